"""Test helpers and fixtures of unitoken-eval (fake plugins, a fake judge, run builders, tiny checkpoints).

A distinctive package name: a generic one (``tests``, ``fake_plugins``) can be taken by another installed
distribution and hide ours.  pyproject.toml puts ``tests/`` on pytest's ``pythonpath``; nothing here ships.
"""
