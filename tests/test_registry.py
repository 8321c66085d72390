from __future__ import annotations

import pytest

from unitoken_eval.harness import registry

PROJECT_TASKS = {
    "mmmu_val", "mmbench_dev_en", "mmbench_dev_cn", "seedbench_img", "mmstar", "mathvista_testmini",
    "hallusionbench", "ai2d_test", "ocrbench", "mme", "mmvet", "geneval", "t2i_compbench",
}
T2I_CATEGORIES = {"color", "shape", "texture", "spatial", "3d_spatial", "non_spatial", "complex", "numeracy"}


def test_project_tasks_and_adapters_are_registered_through_entry_points():
    ids = set(registry.task_ids())
    assert PROJECT_TASKS <= ids
    assert {f"t2i_compbench_{c}" for c in T2I_CATEGORIES} <= ids
    assert {"unitoken", "tiny"} <= set(registry.adapter_ids())
    assert {"smoke", "paper"} <= set(registry.suite_ids())


def test_third_party_plugin_is_found_without_forking(plugins):
    assert "fake_echo" in registry.task_ids()
    task = registry.make_task("fake_echo", {"n": 4})
    assert [s.id for s in task.load()] == ["q0", "q1", "q2", "q3"]
    assert registry.adapter_class("fake_echo_model").capabilities == {"understand", "generate"}


def test_unknown_id_suggests_close_matches():
    with pytest.raises(registry.RegistryError, match=r"unknown task 'mmbench_dev_e'.*mmbench_dev_en"):
        registry.task_class("mmbench_dev_e")


def test_broken_plugin_reports_its_import_error(plugins):
    with pytest.raises(registry.RegistryError, match=r"fake_broken.*failed to import"):
        registry.task_class("fake_broken")


def test_entry_point_must_name_the_right_kind_of_class(plugins):
    # An adapter registered under the task group is refused with a message saying so.
    ep = registry._entry_points(registry.ADAPTER_GROUP)["fake_echo_model"]
    registry._entry_points(registry.TASK_GROUP)["as_task"] = ep
    with pytest.raises(registry.RegistryError, match="does not name a Task subclass"):
        registry.task_class("as_task")


def test_paper_suite_runs_what_the_papers_tables_need_and_full_runs_everything():
    from unitoken_eval.harness.config import load_config

    paper = load_config(registry.suite_path("paper"))
    t2i = [t for t in registry.expand_task_ids(paper.tasks) if t.startswith("t2i_compbench")]
    assert t2i == ["t2i_compbench_color", "t2i_compbench_shape", "t2i_compbench_texture"]  # Table 4's columns
    assert paper.options["geneval"] == {"images_per_prompt": 4, "request": {"cfg": 5.5}}
    assert all(paper.options[t] == {"images_per_prompt": 10, "request": {"cfg": 5.0}} for t in t2i)
    size = registry.suite_size("paper")
    assert size["undeclared"] == [] and size["tasks"]["t2i_compbench_color"]["generated_images"] == 3000
    assert size["total"]["generated_images"] == 553 * 4 + 3 * 300 * 10
    assert size["tasks"]["mmbench_dev_en"] == {"kind": "understand", "samples": 4329, "input_images": 1164,
                                               "generated_images": 0}

    full = load_config(registry.suite_path("full"))
    members = registry.expand_task_ids(full.tasks)
    assert {f"t2i_compbench_{c}" for c in T2I_CATEGORIES} | {"t2i_compbench"} <= set(members)
    assert set(paper.tasks) - set(t2i) <= set(full.tasks)
    assert registry.suite_size("full")["total"]["generated_images"] == 553 * 4 + 8 * 300 * 10
    # a task's own options change what it draws: the size follows them
    assert registry.run_size(["geneval"], {"geneval": {"images_per_prompt": 1}})["total"]["generated_images"] == 553
