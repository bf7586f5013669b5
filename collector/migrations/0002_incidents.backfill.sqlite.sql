-- count_items from the counts stored before 2 (the engines read JSON differently).
INSERT INTO count_items
    SELECT c.agent, c.seq, c.camera, c.line, json_extract(j.value, '$.class'),
           json_extract(j.value, '$.direction'), json_extract(j.value, '$.count'),
           c.interval_start_ms
    FROM counts c, json_each(c.payload, '$.counts') j;
