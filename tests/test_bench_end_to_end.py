"""bench/end_to_end.py writes data the real tasks load, in the benchmarks' proportions, and the plan batches
it so each image is prefilled once (what the end-to-end record's prefill bar checks on the GPU)."""

from __future__ import annotations

import pytest

from bench import end_to_end as e2e
from unitoken_eval.harness import registry
from unitoken_eval.harness.plan import ordered, unfinished_batches


@pytest.mark.parametrize("task_id", ["mmbench_dev_en", "mmbench_dev_cn", "mme", "seedbench_img", "ai2d_test",
                                     "hallusionbench", "mmmu_val", "mathvista_testmini", "mmstar", "ocrbench",
                                     "mmvet"])
def test_written_data_loads_in_the_real_tasks_in_proportion(task_id, tmp_path):
    task = registry.make_task(task_id, {})
    size = task.full_size
    path = e2e.write_understanding(task, 40, tmp_path)
    samples = task.load(str(path))
    assert not any(s.error for s in samples)
    assert abs(len(samples) - 40) <= 2
    images = {s.image_key for s in samples}
    want = size.input_images / size.samples  # distinct images per prompt in the whole benchmark
    assert len(images) / len(samples) == pytest.approx(want, rel=0.12), (len(images), len(samples))
    first = samples[0].load_image()
    assert first.size == e2e.IMAGE_SIZE[task.tsv_name]
    batches = list(unfinished_batches(ordered(samples, "understand"), 16, lambda s: False,
                                      group=lambda s: s.image_key))
    assert sum(len({s.image_key for s in b}) for b in batches) == len(images)  # one prefill per image


def test_generation_prompt_files_load(tmp_path):
    gen = registry.make_task("geneval", {"verify_prompts": False})
    assert len(gen.load(str(e2e.write_geneval(50, tmp_path)))) == 50
    color = registry.make_task("t2i_compbench_color", {})
    assert len(color.load(str(e2e.write_t2i("color", 20, tmp_path)))) == 20
