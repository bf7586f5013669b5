-- names for people (from the agents' and cameras' statuses) and each incident's rule.
ALTER TABLE agents ADD COLUMN name TEXT;
ALTER TABLE cameras ADD COLUMN name TEXT;
ALTER TABLE incidents ADD COLUMN rule TEXT;
