"""Result data shipped with the package: ``published/`` holds the papers' numbers with their sources and the
layouts of their tables (``paper_layouts.yaml``); the engine finds it by module spec (harness/aggregate.py).

``runs/`` (the default place for run directories) is not part of the package and is ignored by git.
"""
