-- A small sample HIS schema with rows: what a restore must bring back.
CREATE TABLE patients (
    id serial PRIMARY KEY,
    mrn text NOT NULL UNIQUE,
    name text NOT NULL,
    born date NOT NULL
);
CREATE TABLE encounters (
    id serial PRIMARY KEY,
    patient_id integer NOT NULL REFERENCES patients (id),
    department text NOT NULL,
    admitted timestamptz NOT NULL,
    diagnosis text NOT NULL
);
INSERT INTO patients (mrn, name, born)
SELECT 'MRN' || lpad(n::text, 6, '0'), 'Patient ' || n, date '1950-01-01' + n * 97
FROM generate_series(1, 200) AS n;
INSERT INTO encounters (patient_id, department, admitted, diagnosis)
SELECT 1 + (n % 200), (ARRAY['Cardiology', 'Oncology', 'Emergency', 'Radiology'])[1 + n % 4],
       timestamptz '2026-01-01 08:00+08' + n * interval '37 minutes', 'ICD-10 I' || (10 + n % 80)
FROM generate_series(1, 1000) AS n;
