"""Data: the shapes generator (``unclip.data.shapes``) and webdataset DataModules."""
