"""Rules shared by the understanding tasks: data loading, MCQ matching, circular evaluation, yes/no parsing.

Each rule exists once here; the task modules only say which rule and which columns they use.
"""
