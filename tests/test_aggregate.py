import pytest

from unitoken_eval.harness.aggregate import (AggregateError, applicable_layouts, column_value, convert, get_layout, load_layouts,
                               run_cells, scale_max)
from unitoken_eval_testkit.run_builder import add_task, full_understanding_run, make_run


def test_scales_and_conversion():
    assert scale_max("percent") == 100 and scale_max("fraction") == 1 and scale_max("points_0_2800") == 2800
    assert convert(0.58, "fraction", "percent") == pytest.approx(58.0)
    assert convert(1400, "points_0_2800", "percent", divisor=28) == pytest.approx(50.0)
    assert convert(634, "points_0_1000", "percent") == pytest.approx(63.4)
    with pytest.raises(AggregateError, match="unknown scale"):
        convert(1, "stars", "percent")


def test_general_and_textread_averages_use_the_divisors(tmp_path):
    store = full_understanding_run(tmp_path / "run")
    cells = run_cells(get_layout("table6"), store.all_metrics())
    general = (34.2 + 64.1 + 70.3 + 1400 / 28 + 45.2 + 70.3 + 41.6 + 49.6) / 8
    textread = (67.6 + 634 / 10 + 30.0) / 3
    assert cells["general"].status == "ok" and cells["general"].value == pytest.approx(general)
    assert cells["textread"].value == pytest.approx(textread)
    # No generation task in the run: those columns are missing, not zero.
    assert cells["geneval"].value is None and cells["geneval"].status == "missing"
    assert cells["t2i_compbench"].status == "incomplete"


def test_average_with_a_missing_member_is_incomplete_not_computed_over_fewer(tmp_path):
    store = make_run(tmp_path / "run")
    add_task(store, "ai2d_test", 67.6)
    add_task(store, "ocrbench", 634.0, scale="points_0_1000", name="total")
    cell = column_value(get_layout("table6").column("textread"), store.all_metrics())
    assert cell.value is None and cell.status == "incomplete"
    assert "mmvet" in cell.note and "2 of 3" in cell.note


def test_unscored_member_makes_the_average_incomplete_with_its_reason(tmp_path):
    store = make_run(tmp_path / "run")
    add_task(store, "ai2d_test", 67.6)
    add_task(store, "ocrbench", 634.0, scale="points_0_1000", name="total")
    add_task(store, "mmvet", None, status="not_scored", reason="no judge configured")
    cell = column_value(get_layout("table6").column("textread"), store.all_metrics())
    assert cell.value is None and "no judge configured" in cell.note


def test_divisor_is_configurable_and_named_in_notes(tmp_path):
    text = (tmp_path / "lay.yaml")
    text.write_text("""
layouts:
  t:
    title: T
    columns:
      - id: avg
        label: Avg
        scale: percent
        average:
          - {task: a}
          - {task: b, divisor: 20}
""")
    lay = get_layout("t", text)
    store = make_run(tmp_path / "run")
    add_task(store, "a", 50.0)
    add_task(store, "b", 1400.0, scale="points_0_2800")
    assert column_value(lay.column("avg"), store.all_metrics()).value == pytest.approx((50 + 70) / 2)
    assert lay.divisor_notes() == ["Avg = mean(a, b / 20) on percent"]


def test_named_metric_and_scale_conversion(tmp_path):
    store = make_run(tmp_path / "run")
    add_task(store, "geneval", 0.58, scale="fraction", name="overall",
             metrics={"single_object": 0.98, "two_object": 0.75, "position": 0.26})
    cells = run_cells(get_layout("table4"), store.all_metrics())
    assert cells["geneval_overall"].value == pytest.approx(0.58)
    assert cells["geneval_single_object"].value == pytest.approx(0.98)
    assert cells["geneval_counting"].status == "missing" and "counting" in cells["geneval_counting"].note
    table6 = run_cells(get_layout("table6"), store.all_metrics())
    assert table6["geneval"].value == pytest.approx(58.0)


def test_non_numeric_metric_is_an_error_naming_the_task(tmp_path):
    store = make_run(tmp_path / "run")
    add_task(store, "geneval", 0.5, scale="fraction", name="overall", metrics={"single_object": "high"})
    with pytest.raises(AggregateError, match="geneval"):
        run_cells(get_layout("table4"), store.all_metrics())


@pytest.mark.parametrize("body, match", [
    ("layouts: {t: {columns: [{id: a, scale: percent}]}}", "exactly one of 'task' or 'average'"),
    ("layouts: {t: {columns: [{id: a, task: x, scale: stars}]}}", "unknown scale"),
    ("layouts: {t: {columns: [{id: a, scale: percent, average: [{task: x, divisor: 0}]}]}}", "divisor must be positive"),
    ("layouts: {t: {columns: [{id: a, task: x, scale: percent, colour: red}]}}", "unknown keys"),
    ("nothing: 1", "top-level 'layouts'"),
])
def test_bad_layout_file_errors_name_the_file(tmp_path, body, match):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(AggregateError, match=match) as info:
        load_layouts(path)
    assert str(path) in str(info.value)


def test_shipped_layouts_and_applicability(tmp_path):
    layouts = load_layouts()
    assert {"table3", "table4", "table6"} <= set(layouts)
    store = make_run(tmp_path / "run")
    add_task(store, "mmstar", 45.2)
    assert [lay.id for lay in applicable_layouts(store.all_metrics(), layouts)] == ["table3", "table6"]
