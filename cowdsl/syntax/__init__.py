"""Parse and check .cow files."""
