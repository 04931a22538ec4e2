"""Reports: PNG plots (matplotlib, optional) and a Markdown page from result tables."""
from .markdown import report
from .plots import load, plot_crossover, plot_measured, plot_presets

__all__ = ["report", "load", "plot_measured", "plot_presets", "plot_crossover"]
