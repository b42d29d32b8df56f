//! usher's JSON logs: the child's stdout and stderr lines as records (being written).
