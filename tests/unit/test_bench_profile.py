"""The profile's reading of a py-spy flame graph: a stage's share is the samples with its frame anywhere on
the stack, counted once however many lines or callers the frame has (recursion included)."""

from __future__ import annotations

from pathlib import Path

from bench.profile import STAGES, shares


def _node(frame: str, x: int, w: int, total: int) -> str:
    return (
        f"<g><title>{frame} (samples, {100 * w / total:.2f}%)</title>"
        f'<rect x="0%" y="0" width="0%" height="15" fg:x="{x}" fg:w="{w}"/></g>'
    ).replace("(samples", f"(somewhere.py:1) ({w} samples")


def test_a_stage_counts_the_samples_under_its_frame_once(tmp_path: Path) -> None:
    total = 200
    svg = tmp_path / "flame-worker.svg"
    svg.write_text(
        "".join(
            [
                _node("all", 0, total, total),
                # Projector.decide at two lines, side by side, and once inside itself (recursion).
                _node("Projector.decide", 0, 30, total),
                _node("Projector.decide", 30, 20, total),
                _node("Projector.decide", 5, 10, total),
                # The same frame under another caller, elsewhere in the graph.
                _node("Projector.decide", 150, 10, total),
                _node("Fetcher._fetcher", 60, 40, total),
                _node("Agent._execute_actor &lt;lambda&gt;", 100, 5, total),
            ]
        ),
        encoding="utf-8",
    )
    found = shares(svg)
    assert set(found) == {stage for stage, _ in STAGES["flame-worker.svg"]}
    by_frame = {frame: found[stage] for stage, frame in STAGES["flame-worker.svg"]}
    assert by_frame["Projector.decide"] == 30.0  # (30 + 20 + 10) of 200: the nested node adds nothing
    assert by_frame["Fetcher._fetcher"] == 20.0
    assert by_frame["Projector.commit"] == 0.0  # not in the graph
