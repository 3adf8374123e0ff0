-- Prices and usage beyond tokens: images, seconds of input audio, characters of speech input and
-- a fixed price per request. A price row keeps its token prices; the unit prices are added beside
-- them, 0 (or NULL for the image table) meaning none. A usage record says how many of which unit
-- it was billed for (units, unit), beside its tokens.

ALTER TABLE model_pricing ADD COLUMN image_prices TEXT;     -- JSON object: key → micro-USD per image
ALTER TABLE model_pricing ADD COLUMN audio_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_pricing ADD COLUMN characters_per_million INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_pricing ADD COLUMN request_price INTEGER NOT NULL DEFAULT 0;

ALTER TABLE usage_records ADD COLUMN units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN unit TEXT NOT NULL DEFAULT '';
