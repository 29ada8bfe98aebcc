"""Real data sets read from local files (no downloads): see each module for where they live."""
