"""The quality-check Lambda (issue 18)."""
