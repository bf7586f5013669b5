-- each camera's detection figures from its status (achieved and target analysis
-- rate, frames dropped, detection latency).
ALTER TABLE cameras ADD COLUMN detect_fps REAL;
ALTER TABLE cameras ADD COLUMN target_fps REAL;
ALTER TABLE cameras ADD COLUMN dropped INTEGER;
ALTER TABLE cameras ADD COLUMN detect_latency_ms REAL;
