"""The ``imucap`` command line: the one room that knows every other room."""
