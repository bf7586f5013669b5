-- count_items from the counts stored before 2 (the engines read JSON differently).
INSERT INTO count_items
    SELECT c.agent, c.seq, c.camera, c.line, j ->> 'class', j ->> 'direction',
           CAST(j ->> 'count' AS BIGINT), c.interval_start_ms
    FROM counts c, jsonb_array_elements(CAST(c.payload AS JSONB) -> 'counts') j;
