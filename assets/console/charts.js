// Small live line charts on <canvas>, hand-written (no library, no CDN).
// A chart keeps the last `points` values of one or more series and redraws
// at most once per animation frame. What it shows is also said in text: the
// canvas's `aria-label` carries each series' latest value (as the legend
// does) and `data-points` how many values are plotted.

export class Sparkline {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} opts
   * @param {string[]} opts.series   names, one per line (shown in the legend)
   * @param {(v: number) => string} [opts.format]  value label
   * @param {number} [opts.max]      fixed top of the scale (else the largest value)
   * @param {number} [opts.points]   how many values are kept (default 60)
   */
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.series = opts.series;
    this.format = opts.format || ((v) => v.toFixed(1));
    this.max = opts.max;
    this.points = opts.points || 60;
    // Each series on its own scale (for readings of different units).
    this.perSeries = !!opts.perSeries;
    this.values = this.series.map(() => []);
    this.pending = false;
  }

  /** Appends one value per series (`null` leaves a gap). */
  push(...vals) {
    vals.forEach((v, i) => {
      const list = this.values[i];
      list.push(Number.isFinite(v) ? v : null);
      if (list.length > this.points) list.shift();
    });
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const { canvas } = this;
    const css = getComputedStyle(canvas);
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const all = this.values.flat().filter((v) => v !== null);
    const top = this.max ?? Math.max(1e-9, ...all) * 1.15;
    const pad = 2;
    ctx.font = `11px ${css.fontFamily}`;
    ctx.textBaseline = "top";

    // Legend first (name and latest value per series), wrapped into rows,
    // so the plot takes the height that is left.
    const labels = [];
    let x = pad;
    let row = 0;
    this.values.forEach((list, i) => {
      const last = list.length ? list[list.length - 1] : null;
      const text = `${this.series[i]} ${last === null ? "–" : this.format(last)}`;
      const w = ctx.measureText(text).width;
      if (x > pad && x + w > width - pad) {
        x = pad;
        row++;
      }
      labels.push({ text, x, y: row * 13 });
      x += w + 10;
    });
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", labels.map((l) => l.text).join(", "));
    canvas.dataset.points = String(Math.max(0, ...this.values.map((list) => list.filter((v) => v !== null).length)));
    const legend = (row + 1) * 13 + 1;
    const plotH = height - legend - pad;
    const step = (width - 2 * pad) / (this.points - 1);

    // Grid: a base line and a mid line.
    ctx.strokeStyle = css.getPropertyValue("--chart-grid") || "#444";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const f of [0.5, 1]) {
      const y = Math.round(legend + plotH * f) + 0.5;
      ctx.moveTo(pad, y);
      ctx.lineTo(width - pad, y);
    }
    ctx.stroke();

    this.values.forEach((list, i) => {
      const colour = css.getPropertyValue(`--chart-${i}`) || "#4af";
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let drawing = false;
      const offset = this.points - list.length;
      let lo = 0;
      let hi = top;
      if (this.perSeries) {
        const vals = list.filter((v) => v !== null);
        lo = Math.min(...vals);
        hi = Math.max(...vals);
        const margin = (hi - lo) * 0.15 || Math.abs(hi) * 0.05 || 1;
        lo -= margin;
        hi += margin;
      }
      list.forEach((v, j) => {
        if (v === null) {
          drawing = false;
          return;
        }
        const px = pad + (offset + j) * step;
        const py = legend + plotH - ((Math.min(v, hi) - lo) / (hi - lo)) * plotH;
        if (drawing) ctx.lineTo(px, py);
        else ctx.moveTo(px, py);
        drawing = true;
      });
      ctx.stroke();
      ctx.fillStyle = colour;
      ctx.fillText(labels[i].text, labels[i].x, labels[i].y);
    });
  }
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
