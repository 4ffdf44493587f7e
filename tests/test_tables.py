"""tables_to_code_blocks: separator rows in their forms, escaped pipes, a bound on columns."""

from __future__ import annotations

from bots.core.tables import tables_to_code_blocks


def test_separator_forms_and_alignment():
    for sep in ("|---|---|", "---|---", " | :--- | ---: | ", "|:--:|--|"):
        header, row = ("| a | b |", "| 1 | 2 |") if sep.count("-") else ("", "")
        out = tables_to_code_blocks(f"{header}\n{sep}\n{row}")
        assert out.startswith("```\na"), (sep, out)
    assert tables_to_code_blocks("| a | b |\n| - | - |\n| 1 | 2 |").startswith("| a")  # one dash: no table
    assert tables_to_code_blocks("| a |\n|---|x|\n") == "| a |\n|---|x|\n"
    out = tables_to_code_blocks("| n | v |\n|:--:|--:|\n| one | 22 |").split("\n")
    assert out[1] == " n  |  v" and out[3] == "one | 22"  # centred, right-aligned


def test_escaped_pipes_and_inline_marks():
    out = tables_to_code_blocks("| a | b |\n|---|---|\n| x \\| y | **z** `w` |")
    assert out.split("\n")[3] == "x | y | z w"


def test_columns_are_bounded():
    header = "|" + "|".join(f"c{i}" for i in range(500)) + "|"
    out = tables_to_code_blocks(header + "\n|" + "---|" * 500 + "\n|x|")
    assert out.split("\n")[1].count("|") == 19  # 20 columns
    assert "c19" in out and "c20" not in out


def test_blank_run_in_a_separator_candidate_is_not_a_table():
    text = "a|b\n" + " " * 20_000 + "x"
    assert tables_to_code_blocks(text) == text
