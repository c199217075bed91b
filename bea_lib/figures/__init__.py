"""Plots and tables of the chapters."""
