"""The IPython layer: the magics, their command line and the display of answers."""
