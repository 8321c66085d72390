"""Benchmarks: one module (or small package) per benchmark, with the shared answer-matching rules in
``unitoken_eval.tasks.common``. A task knows its benchmark and nothing about models or GPUs."""
