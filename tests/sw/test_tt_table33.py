"""The Table 3.3 page: final and best epoch per row, sizes recomputed from the logged ranks, unrun rows marked."""

from ultratrain.sw.tt.table33 import main, summarize, write_table


def _epoch(epoch, test_acc, ranks):
    return {"epoch": epoch, "train_acc": 0.9, "test_acc": test_acc, "params": 0, "memory_bits": 0, "ranks": ranks}


def test_summary_and_table(tmp_path):
    histories = {"fixed_prior": [_epoch(1, 0.85, [[16, 16, 16], [16]]), _epoch(2, 0.87, [[16, 12, 16], [16]]),
                                 _epoch(3, 0.86, [[16, 12, 12], [8]])],
                 "float_no-prior": []}
    s = summarize(histories)
    assert set(s) == {"fixed_prior"}
    assert s["fixed_prior"]["best"]["epoch"] == 2 and s["fixed_prior"]["final"]["epoch"] == 3
    cores = 28 * 16 + 16 * 16 * 12 + 4 * 12 * 12 + 256 * 12 + 32 * 8 + 256 * 8
    assert s["fixed_prior"]["final"]["params"] == cores + 528
    assert s["fixed_prior"]["final"]["memory_bits"] == 4 * cores + 8 * 528
    text = write_table(s, 30, "make reproduce-table3.3", "test machine")
    assert "| Fixed, w/ prior | 3 | 86.00 | 87.00 (2) |" in text
    assert "| Floating, w/o prior | not run |" in text and "84.86" in text


def test_collect_only_writes_the_page(tmp_path):
    (tmp_path / "runs" / "float_prior").mkdir(parents=True)
    (tmp_path / "runs" / "float_prior" / "metrics.jsonl").write_text(
        '{"epoch": 1, "train_acc": 0.8, "test_acc": 0.84, "params": 1, "memory_bits": 1, "ranks": [[16,16,16],[16]]}\n')
    doc = tmp_path / "table.md"
    assert main(["--collect-only", "--out", str(tmp_path / "runs"), "--doc", str(doc), "--epochs", "30"]) == 0
    assert "| Floating, w/ prior | 1 | 84.00 |" in doc.read_text()
    assert doc.with_suffix(".json").exists() and doc.with_suffix(".png").stat().st_size > 1000


def test_fixed_prior_target_needs_the_memory_bound_too():
    """86.5 % is not enough for the fixed-with-prior row if the model keeps more than 5.11e4 bits."""
    full = [[16, 16, 16], [16]]      # 14,272 core entries: 61,312 bits
    pruned = [[16, 7, 16], [16]]
    for ranks, verdict in ((full, "not met"), (pruned, "met")):
        s = summarize({"fixed_prior": [_epoch(1, 0.88, ranks)]})
        row = next(line for line in write_table(s, 30, "cmd", "m").splitlines() if line.startswith("| Fixed, w/ prior"))
        assert row.endswith(f"({verdict}) |"), row
