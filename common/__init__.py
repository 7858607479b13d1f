"""Helpers every app may use: local calendar dates in TIME_ZONE and chunking. The bottom of the
app stack (common <- accounts <- orders <- payments <- dunning <- backoffice <- demo): it imports
no app of the project."""
