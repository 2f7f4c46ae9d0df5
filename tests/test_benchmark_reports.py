"""The report writers of the benchmark scripts (pure functions, no Ray)."""

from benchmarks.paper_comparison import SECTION_TITLE, replace_section, target_verdict


def test_replace_section_keeps_the_rest_of_the_document():
    document = f"# Results\n\n## Breakout\nold breakout\n\n{SECTION_TITLE} (old)\nold table\n\n## Later\nkept\n"
    updated = replace_section(document, f"{SECTION_TITLE} (new)\nnew table\n")
    assert "old table" not in updated and "new table" in updated
    assert updated.index("## Breakout") < updated.index("new table") < updated.index("## Later\nkept")
    assert updated.count(SECTION_TITLE) == 1


def test_replace_section_appends_when_missing_and_replaces_a_last_section():
    appended = replace_section("# Results\n", f"{SECTION_TITLE}\nfirst\n")
    assert appended.startswith("# Results") and appended.endswith("first\n")
    again = replace_section(appended, f"{SECTION_TITLE}\nsecond\n")
    assert "first" not in again and again.endswith("second\n")


def test_target_verdict_needs_15_points_over_ppo_and_a_lead_over_copy():
    row = lambda agent, solved: (agent, 3, solved, 0.0, 0.0, 0.0, 0.1, 0.2)  # noqa: E731
    met = target_verdict([row("i2a", 0.60), row("copy", 0.50), row("ppo", 0.44)])
    assert "+16.0 points" in met and "**met**" in met
    assert "**not met**" in target_verdict([row("i2a", 0.60), row("copy", 0.61), row("ppo", 0.40)])
    assert "**not met**" in target_verdict([row("i2a", 0.224), row("copy", 0.2), row("ppo", 0.2)])
    assert "needs all three" in target_verdict([row("i2a", 0.5)])
