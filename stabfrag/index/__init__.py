"""The analog index: approximate nearest neighbours over every entity state of a folder,
searched only among the states known at a date, re-ranked exactly."""
