"""Headless clients that speak Arena's wire protocol exactly as a stranger's client would."""
