-- The rule of incidents opened before 5, from their first event (the engines read JSON differently).
UPDATE incidents SET rule = (SELECT CAST(e.payload AS JSONB) ->> 'rule' FROM events e
    WHERE e.incident_id = incidents.id ORDER BY e.observed_at_ms LIMIT 1)
WHERE source = 'event';
