"""``jetport bench --markdown`` and ``--plot``: the comparison as a Markdown table and
its ratios as a bar chart, from results as a run produces them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import jetport.bench.scenarios  # noqa: F401 - registers the scenarios
from jetport.bench.model import Result
from jetport.bench.plot import MISSING, PlotError, bars, check, plot
from jetport.bench.report import markdown

ROWS = [("pubsub 1->1", "pubsub"), ("reqrep", "reqrep")]
TARGETS = ["jetport", "nats-server"]
RESULTS = [
    Result("pubsub 1->1", "pubsub", "jetport", {}, {"msgs_per_s": 2.0e6, "mb_per_s": 32.0}),
    Result("pubsub 1->1", "pubsub", "nats-server", {}, {"msgs_per_s": 1.0e6, "mb_per_s": 16.0}),
    Result("reqrep", "reqrep", "jetport", {},
           {"p50_ms": 0.2, "p90_ms": 0.3, "p99_ms": 0.4, "max_ms": 1.0, "rate": 1000}),
    Result("reqrep", "reqrep", "nats-server", {},
           {"p50_ms": 0.1, "p90_ms": 0.2, "p99_ms": 0.5, "max_ms": None, "rate": 1000},
           error="timed out"),
]


def test_markdown_table_has_a_row_per_scenario_and_the_ratios() -> None:
    text = markdown(ROWS, TARGETS, RESULTS)
    lines = text.splitlines()
    assert lines[0] == ("| scenario | metric | jetport | cpu% cli/srv | nats-server | "
                        "cpu% cli/srv | ratio jetport/nats-server |")
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2].startswith("| pubsub 1->1 | msgs/s \\| MB/s | 2.00M \\| 32.0 |")
    assert lines[2].endswith("| 2.00 |")
    assert lines[3].endswith("| 2.00/1.50/0.80/- |")
    assert "- nats-server / reqrep: timed out" in lines


def test_cpu_cell_shows_each_broker_pair_of_a_side_by_side_run() -> None:
    label = "mqtt qos0 16B 1->1 1M vs mosquitto"
    result = Result(label, "mqtt-qos0", "jetport", {}, {"msgs_per_s": 1.0},
                    {"cpu_pairs": [[3.2, 61.0], [5.0, None]]})
    row = markdown([(label, "mqtt-qos0")], ["jetport"], [result]).splitlines()[2]
    assert row.endswith("| 3/61 5/- |")


def test_plot_bars_are_the_ratios_with_their_direction(tmp_path: Path) -> None:
    assert bars(ROWS, TARGETS, RESULTS) == [
        ("pubsub 1->1", 2.0, True), ("reqrep p50", 2.0, False),
        ("reqrep p90", pytest.approx(1.5), False), ("reqrep p99", 0.8, False)]
    pytest.importorskip("matplotlib", reason="matplotlib unavailable (extra 'plot')")
    svg = tmp_path / "ratios.svg"
    plot(str(svg), ROWS, TARGETS, RESULTS)
    assert svg.read_text().lstrip().startswith("<?xml") and "reqrep p99" in svg.read_text()
    png = tmp_path / "ratios.png"
    plot(str(png), ROWS, TARGETS, RESULTS)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_what_it_cannot_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PlotError, match="PNG or SVG"):
        check("ratios.pdf")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(PlotError) as err:
        check("ratios.png")
    assert str(err.value) == MISSING and "jetport[plot]" in MISSING


def test_the_options_are_on_the_command_line() -> None:
    from jetport.bench.cli import build_parser

    args = build_parser().parse_intermixed_args(
        ["--compare", "pubsub", "--markdown", "out.md", "--plot", "out.svg"])
    assert (args.markdown, args.plot) == ("out.md", "out.svg")
