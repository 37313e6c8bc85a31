//! The option tables in `docs/` are checked against the command line itself
//! (clap's definition of `tailcast serve`), so a new option cannot ship
//! undocumented, a removed one cannot linger in the docs, and a table's
//! default cannot drift from the one the binary uses.
//!
//! The tables: `docs/configuration.md` (every option but access control,
//! with its default) and `docs/security.md` (the access-control options).
//! A row's first cell names one or more options (`` `--tls-cert`,
//! `--tls-key` ``; `` `--jwt-secret-file FILE` ``); a trailing `…` in it
//! stands for options documented in another table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::CommandFactory;
use tailcast::config::Cli;

/// One row of an option table: the options it names and its cells.
struct Row {
    file: &'static str,
    options: Vec<String>,
    cells: Vec<String>,
}

/// The rows of every table in `file` whose first cell names an option.
fn option_rows(file: &'static str) -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let option = regex::Regex::new(r"`(--[a-z0-9-]+)").unwrap();
    let mut rows = Vec::new();
    for line in text.lines() {
        let Some(inner) = line.strip_prefix('|') else {
            continue;
        };
        let cells: Vec<String> = inner
            .trim_end_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect();
        let first = &cells[0];
        if !first.starts_with("`--") {
            continue;
        }
        let options = option
            .captures_iter(first)
            .map(|c| c[1].to_owned())
            .collect();
        rows.push(Row {
            file,
            options,
            cells,
        });
    }
    rows
}

/// `tailcast serve`'s long options and their default values, from clap.
fn serve_options() -> BTreeMap<String, Vec<String>> {
    let cli = Cli::command();
    let serve = cli
        .get_subcommands()
        .find(|c| c.get_name() == "serve")
        .expect("a serve subcommand");
    serve
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            let long = a.get_long()?;
            let defaults = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            Some((format!("--{long}"), defaults))
        })
        .filter(|(long, _)| long != "--help")
        .collect()
}

fn documented() -> Vec<Row> {
    let mut rows = option_rows("docs/configuration.md");
    rows.extend(option_rows("docs/security.md"));
    rows
}

#[test]
fn every_serve_option_has_a_row_in_the_docs() {
    let named: BTreeSet<String> = documented()
        .iter()
        .flat_map(|r| r.options.iter().cloned())
        .collect();
    let missing: Vec<String> = serve_options()
        .into_keys()
        .filter(|o| !named.contains(o))
        .collect();
    assert!(
        missing.is_empty(),
        "options of `tailcast serve` with no row in docs/configuration.md or docs/security.md: {missing:?}"
    );
}

#[test]
fn every_documented_option_exists() {
    let options = serve_options();
    let unknown: Vec<String> = documented()
        .iter()
        .flat_map(|r| r.options.iter().map(move |o| format!("{o} ({})", r.file)))
        .filter(|o| !options.contains_key(o.split(' ').next().unwrap()))
        .collect();
    assert!(
        unknown.is_empty(),
        "rows in the docs name options `tailcast serve` does not have: {unknown:?}"
    );
}

#[test]
fn each_default_in_the_configuration_table_is_the_binarys() {
    let options = serve_options();
    let mut wrong = Vec::new();
    for row in option_rows("docs/configuration.md") {
        let [option] = row.options.as_slice() else {
            continue;
        };
        let Some(defaults) = options.get(option) else {
            continue;
        };
        let cell = row.cells.get(1).map(String::as_str).unwrap_or("");
        match defaults.as_slice() {
            [] => {
                // No default in clap: the table says so in words, never a value.
                if cell.starts_with('`') {
                    wrong.push(format!(
                        "{option}: the docs say {cell}, the binary has none"
                    ));
                }
            }
            [value] => {
                if !cell.starts_with(&format!("`{value}`")) {
                    wrong.push(format!(
                        "{option}: the docs say {cell}, the binary `{value}`"
                    ));
                }
            }
            many => wrong.push(format!("{option}: several defaults {many:?}")),
        }
    }
    assert!(wrong.is_empty(), "defaults that disagree: {wrong:#?}");
}

/// Every invariant of `ARCHITECTURE.md` names the tests that back it
/// (`Tests:` after its bullet), and every test it names exists: a renamed
/// or removed test cannot leave an invariant pointing at nothing.
#[test]
fn every_invariant_names_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("\n## Invariants\n")
        .nth(1)
        .expect("ARCHITECTURE.md has an Invariants section");
    let section = section.split("\n## ").next().unwrap();
    let bullets: Vec<&str> = section.split("\n- ").skip(1).collect();
    assert!(bullets.len() >= 10, "{} invariants found", bullets.len());
    let named =
        regex::Regex::new(r"`((?:src|tests)/[a-z0-9_/]+\.rs)::(?:[a-z0-9_]+::)*([a-z0-9_]+)`")
            .unwrap();
    let mut checked = 0;
    for bullet in bullets {
        let title = bullet.lines().next().unwrap_or_default();
        assert!(
            bullet.contains("\n  Tests: "),
            "invariant without a Tests: line: {title}"
        );
        for found in named.captures_iter(bullet) {
            let (file, name) = (&found[1], &found[2]);
            let source = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("{title}: cannot read {file}: {e}"));
            assert!(
                source.contains(&format!("fn {name}(")),
                "{title}: {file} has no test {name}"
            );
            checked += 1;
        }
    }
    eprintln!("{checked} tests named by the invariants exist");
}
