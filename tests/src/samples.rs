//! Sample schemas that use every object kind each engine has, for the
//! schema conversion and assessment tests.

/// MariaDB, statement by statement (database `shop`): ENUM, SET, YEAR,
/// GEOMETRY, JSON, generated and ON UPDATE columns, prefix / FULLTEXT /
/// SPATIAL / unique indexes, checks, a foreign key with actions, RANGE
/// COLUMNS partitions, comments, a non-default collation, a keyless table,
/// four views (one untranslatable), four triggers (one with IF/SIGNAL, one calling a procedure), a
/// function and two procedures (one with DECLARE), and rows.
pub const MARIADB_SCHEMA: &[&str] = &[
    "CREATE TABLE customers (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        email VARCHAR(120) NOT NULL COMMENT 'login name',
        name VARCHAR(80) CHARACTER SET latin1 COLLATE latin1_swedish_ci,
        tier ENUM('free','pro','enterprise') NOT NULL DEFAULT 'free',
        tags SET('news','beta','vip'),
        born YEAR,
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
        UNIQUE KEY uq_email (email),
        KEY by_name (name(10))
    ) COMMENT='people who buy'",
    "CREATE TABLE products (
        id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        sku CHAR(12) NOT NULL,
        title VARCHAR(200) NOT NULL,
        body TEXT,
        price DECIMAL(10,2) NOT NULL CHECK (price >= 0),
        qty INT NOT NULL DEFAULT 0,
        total DECIMAL(12,2) AS (price * qty) STORED,
        location GEOMETRY NOT NULL,
        attrs JSON,
        FULLTEXT KEY ft_title (title, body),
        SPATIAL KEY sp_location (location),
        CONSTRAINT chk_qty CHECK (qty >= 0)
    )",
    "CREATE TABLE orders (
        id BIGINT NOT NULL AUTO_INCREMENT,
        customer_id INT UNSIGNED NOT NULL,
        placed DATE NOT NULL,
        amount DECIMAL(12,2),
        status VARCHAR(10) DEFAULT 'new',
        PRIMARY KEY (id, placed),
        KEY by_customer (customer_id)
    ) PARTITION BY RANGE COLUMNS(placed) (
        PARTITION p2023 VALUES LESS THAN ('2024-01-01'),
        PARTITION p2024 VALUES LESS THAN ('2025-01-01'),
        PARTITION pmax VALUES LESS THAN (MAXVALUE))",
    "CREATE TABLE order_items (
        order_id BIGINT NOT NULL, line SMALLINT NOT NULL, product_id INT NOT NULL, qty INT NOT NULL DEFAULT 1,
        PRIMARY KEY (order_id, line),
        CONSTRAINT fk_item_product FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE RESTRICT ON UPDATE CASCADE)",
    "CREATE TABLE audit_log (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, product_id INT, action VARCHAR(10),
        at DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3))",
    "CREATE TABLE notes (author VARCHAR(40), body TEXT)",
    "CREATE VIEW v_customer_orders AS SELECT c.id, c.email, COUNT(o.id) AS orders, IFNULL(SUM(o.amount), 0) AS spent
        FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.email",
    "CREATE VIEW v_product_labels AS SELECT id, CONCAT(sku, ' ', title) AS label,
        IF(qty > 0, 'in stock', 'sold out') AS availability FROM products",
    "CREATE VIEW v_months AS SELECT id, DATE_FORMAT(created_at, '%Y-%m') AS ym FROM customers",
    "CREATE VIEW v_sounds AS SELECT id, SOUNDEX(name) AS sound FROM customers",
    "CREATE TRIGGER trg_products_bi BEFORE INSERT ON products FOR EACH ROW SET NEW.sku = UPPER(NEW.sku)",
    "CREATE TRIGGER trg_products_au AFTER UPDATE ON products FOR EACH ROW
        BEGIN INSERT INTO audit_log (product_id, action) VALUES (NEW.id, 'update'); END",
    "CREATE TRIGGER trg_orders_bi BEFORE INSERT ON orders FOR EACH ROW
        BEGIN IF NEW.amount < 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'negative amount'; END IF; END",
    "CREATE FUNCTION net_price(p DECIMAL(10,2), rate DECIMAL(5,2)) RETURNS DECIMAL(10,2) DETERMINISTIC
        RETURN p * (1 - rate / 100)",
    "CREATE PROCEDURE restock(IN pid INT, IN n INT) BEGIN UPDATE products SET qty = qty + n WHERE id = pid; END",
    "CREATE PROCEDURE close_old(IN days INT) BEGIN DECLARE cutoff DATE; SET cutoff = CURDATE() - INTERVAL days DAY;
        UPDATE orders SET status = 'closed' WHERE placed < cutoff; END",
    "CREATE TRIGGER trg_items_ai AFTER INSERT ON order_items FOR EACH ROW CALL restock(NEW.product_id, 0)",
    "INSERT INTO customers (email, name, tier, tags, born) VALUES
        ('a@x.io', 'Åsa', 'pro', 'news,vip', 1990), ('b@x.io', 'Bo', 'free', NULL, NULL),
        ('c@x.io', NULL, 'enterprise', 'beta', 2001)",
    "INSERT INTO products (sku, title, body, price, qty, location, attrs) VALUES
        ('ab-1', 'Red lamp', 'A lamp that is red', 19.90, 3, ST_GeomFromText('POINT(1 2)'), '{\"color\": \"red\"}'),
        ('cd-2', 'Blue chair', 'Sit', 120.00, 0, ST_GeomFromText('POINT(3 4)'), NULL)",
    "UPDATE products SET qty = 5 WHERE id = 1",
    "INSERT INTO customers (email) VALUES ('gone@x.io')",
    "DELETE FROM customers WHERE email = 'gone@x.io'",
    "INSERT INTO orders (customer_id, placed, amount) VALUES (1, '2023-05-01', 10.50), (1, '2024-02-02', 99.99),
        (2, '2025-03-03', 5.00)",
    "INSERT INTO order_items VALUES (1, 1, 1, 2), (2, 1, 2, 1)",
    "INSERT INTO notes VALUES ('me', 'hello'), ('you', NULL)",
];

/// PostgreSQL (schema `app`): enum, domain and composite types, arrays,
/// identity, bigserial, a free sequence used as a default, expression /
/// partial / GIN indexes, checks, foreign keys, range partitions, a
/// generated column, two views and a materialized view, PL/pgSQL triggers
/// on INSERT OR UPDATE (one with IF / RAISE), SQL and PL/pgSQL functions, a procedure, comments, a
/// column collation, and rows.
pub const POSTGRES_SCHEMA: &str = r#"
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('happy', 'sad');
CREATE DOMAIN app.email AS varchar(200) CHECK (VALUE LIKE '%@%');
CREATE TYPE app.address AS (street text, city text);
CREATE SEQUENCE app.invoice_no START 1000;
CREATE TABLE app.users (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    email app.email NOT NULL,
    mood app.mood DEFAULT 'happy',
    tags text[],
    home app.address,
    score numeric(8,2) CHECK (score >= 0),
    created timestamptz NOT NULL DEFAULT now(),
    name varchar(80) COLLATE "C",
    upper_name text GENERATED ALWAYS AS (upper(name)) STORED,
    CONSTRAINT users_email_key UNIQUE (email));
COMMENT ON TABLE app.users IS 'people';
COMMENT ON COLUMN app.users.email IS 'login';
CREATE INDEX users_lower_name ON app.users (lower(name));
CREATE INDEX users_active ON app.users (created) WHERE score > 0;
CREATE INDEX users_tags ON app.users USING gin (tags);
CREATE INDEX users_name ON app.users (name);
CREATE TABLE app.events (
    id bigserial, at date NOT NULL,
    user_id bigint REFERENCES app.users (id) ON DELETE CASCADE,
    payload jsonb,
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.invoices (
    no integer PRIMARY KEY DEFAULT nextval('app.invoice_no'),
    user_id bigint NOT NULL REFERENCES app.users (id),
    total numeric(12,2) NOT NULL,
    updated timestamptz);
CREATE TABLE app.settings (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE app.metrics (day date NOT NULL, name varchar(40) NOT NULL, value double precision,
    PRIMARY KEY (day, name)) PARTITION BY RANGE (day);
CREATE TABLE app.metrics_2025 PARTITION OF app.metrics FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.metrics_old PARTITION OF app.metrics FOR VALUES FROM (MINVALUE) TO ('2025-01-01');
CREATE VIEW app.v_user_totals AS
    SELECT u.id, u.email, coalesce(sum(i.total), 0) AS spent
      FROM app.users u LEFT JOIN app.invoices i ON i.user_id = u.id GROUP BY u.id, u.email;
CREATE VIEW app.v_labels AS SELECT id, 'user ' || name AS label FROM app.users;
CREATE MATERIALIZED VIEW app.mv_daily AS SELECT at, count(*) AS n FROM app.events GROUP BY at;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated := now(); RETURN NEW; END $$;
CREATE TRIGGER invoices_touch BEFORE INSERT OR UPDATE ON app.invoices FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE FUNCTION app.check_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.score > 1000 THEN
    RAISE EXCEPTION 'score too high';
  ELSIF NEW.score IS NULL THEN
    NEW.score := 0;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER users_check_score BEFORE INSERT OR UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.check_score();
CREATE FUNCTION app.add_tax(x numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT x * 1.2 $$;
CREATE FUNCTION app.user_count() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  SELECT count(*) INTO n FROM app.users;
  RETURN n;
END $$;
CREATE PROCEDURE app.archive(days int) LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM app.events WHERE at < current_date - days;
END $$;
INSERT INTO app.users (email, mood, tags, home, score, name) VALUES
    ('a@x.io', 'sad', '{red,"with space"}', ROW('1 Main St', 'Oslo'), 10.50, 'Ann'),
    ('b@x.io', DEFAULT, NULL, NULL, NULL, 'Bo'),
    ('c@x.io', 'happy', '{}', ROW(NULL, 'Rome'), 0, NULL);
INSERT INTO app.events (at, user_id, payload) VALUES
    ('2024-03-01', 1, '{"k": 1}'), ('2025-06-01', 1, NULL), ('2025-07-01', 2, '[1, 2]');
INSERT INTO app.invoices (user_id, total) VALUES (1, 100.00), (2, 5.25);
INSERT INTO app.metrics VALUES ('2024-05-05', 'cpu', 0.5), ('2025-05-05', 'cpu', 0.75);
INSERT INTO app.settings VALUES ('theme', '"dark"'), ('limits', '{"rows": 10}');
SELECT nextval('app.invoice_no') FROM generate_series(1, 5);
"#;
