"""Tests against the real bubblewrap sandbox."""
