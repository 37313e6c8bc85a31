//! One way to turn an error into a line of text: its message followed by
//! those of its causes. reqwest's own message is often only "error sending
//! request"; the reason (connection refused, certificate unknown) is below
//! it. A leaf: it imports nothing of tailcast.

/// An error's message followed by those of its causes, `: `-separated; a
/// cause whose text the line already holds is not repeated.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn causes_follow_the_message_once_each() {
        let inner = Layer("connection refused", None);
        let middle = Layer("connect failed: connection refused", Some(Box::new(inner)));
        let outer = Layer("error sending request", Some(Box::new(middle)));
        assert_eq!(
            chain(&outer),
            "error sending request: connect failed: connection refused"
        );
    }
}
