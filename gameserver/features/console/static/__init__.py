"""The console page, its script and stylesheet: package data, served as they are (no build step)."""
