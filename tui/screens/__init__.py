"""The four views of the app, each in its own module."""
