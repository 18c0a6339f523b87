"""The tasks a run can train (one ``<task>_training`` module per task, imported on first use)."""

TASKS = {
    "navigation": "geosparse.tasks.navigation_training:NavigationTask",
    "language": "geosparse.tasks.language_training:LanguageTask",
    "adding": "geosparse.tasks.adding_training:AddingTask",
}
"""Task name -> its ``Task`` class (``module:class``; ``geosparse.runs.new_run`` imports it)."""
