"""Plots and result tables."""
