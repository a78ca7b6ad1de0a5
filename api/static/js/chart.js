// A small canvas line chart of two series (in and out), the last `span` points.
export class RateChart {
  constructor(canvas, span = 300) {
    this.canvas = canvas;
    this.span = span;
    this.series = { in: [], out: [] };
    this.draws = 0;
  }

  push(inRate, outRate) {
    for (const [k, v] of [["in", inRate], ["out", outRate]]) {
      const s = this.series[k];
      s.push(v);
      if (s.length > this.span) s.shift();
    }
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const w = c.clientWidth || 300, hgt = c.clientHeight || 110, dpr = window.devicePixelRatio || 1;
    if (c.width !== w * dpr) { c.width = w * dpr; c.height = hgt * dpr; }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const max = Math.max(1, ...this.series.in, ...this.series.out);
    g.strokeStyle = "#e3e7ee";
    g.lineWidth = 1;
    for (const f of [0.25, 0.5, 0.75]) {
      g.beginPath(); g.moveTo(0, hgt * f); g.lineTo(w, hgt * f); g.stroke();
    }
    g.fillStyle = "#5a6475";
    g.font = "11px system-ui, sans-serif";
    g.fillText(`${Math.round(max).toLocaleString("en-US")}/s`, 4, 12);
    g.textAlign = "right";
    g.fillText(`${Math.round(this.span / 60)} min, now →`, w - 4, 12);
    g.textAlign = "left";
    const colours = { in: "#0b8a5b", out: "#c5520b" };
    for (const k of ["in", "out"]) {
      const s = this.series[k];
      g.strokeStyle = colours[k];
      g.lineWidth = 2;
      g.beginPath();
      s.forEach((v, i) => {
        const x = w - (s.length - 1 - i) * (w / (this.span - 1));
        const y = hgt - 2 - (v / max) * (hgt - 16);
        if (i) g.lineTo(x, y); else g.moveTo(x, y);
      });
      g.stroke();
    }
    this.draws++;
  }
}
