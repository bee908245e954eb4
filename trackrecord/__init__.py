"""Core of trackrecord: configuration, database, queue, logging and the command line."""
