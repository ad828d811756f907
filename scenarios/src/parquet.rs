//! Parquet copies of the large tables (`--parquet`; the Python package
//! asks for them by default): `runs.parquet`, `traces.parquet` and
//! `run-traces.parquet` beside their CSV files, with the same rows and
//! columns and one fixed type per column ([`column_kind`]), so a 10⁶-run
//! sweep loads into pandas or polars from a columnar file, not a CSV parse.
//!
//! Written from the finished CSV (the CSV stays the reference: what resume
//! and `psim merge` read), in row groups of [`ROW_GROUP`] rows, without
//! compression (the crate is built without codecs, to keep the build small).
//! An empty CSV cell (a diverged run's error, an absent outcome step, a
//! model a point does not have) is a null.

use crate::output::{OutputDir, OutputError};
use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::path::PathBuf;
use std::sync::Arc;

/// The tables that get a Parquet copy (their names without `.csv`).
pub const TABLES: [&str; 3] = ["runs", "traces", "run-traces"];

/// Rows per row group: bounds the memory of a conversion (≈ 20 MB of cells).
pub const ROW_GROUP: usize = 65_536;

/// The type of a column of psim's tables, the same whatever its values:
/// the one place both the Parquet files and the Python package's
/// DataFrames (`_psim.column_kind`) take it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A count or index, never empty: int64.
    Count,
    /// A step that may be absent (`outcome_step`): nullable int64.
    OptionalCount,
    /// Any other number (errors, means, times, parameters, metrics):
    /// float64, empty is null (NaN in pandas).
    Float,
    /// A model or outcome in its text syntax: UTF-8.
    Text,
}

impl ColumnKind {
    /// The kind's name as the Python package reads it.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Count => "count",
            ColumnKind::OptionalCount => "optional_count",
            ColumnKind::Float => "float",
            ColumnKind::Text => "text",
        }
    }
}

/// The kind of column `name` of psim's tables.
pub fn column_kind(name: &str) -> ColumnKind {
    const TEXT: &[&str] = &[
        "delay",
        "compute_time",
        "consistency",
        "worker_compute",
        "outcome",
        "setting",
    ];
    const COUNT: &[&str] = &[
        "point",
        "run",
        "workers",
        "step",
        "runs",
        "max_staleness",
        "received",
        "applied",
        "dropped_too_stale",
        "dropped_after_stop",
        "clamped",
        "cancelled",
        "capped_sleeps",
        "worker",
        "p50_staleness",
        "p90_staleness",
        "p99_staleness",
        "staleness",
        "count",
        "fetched_version",
        "applied_version",
    ];
    if TEXT.contains(&name) {
        ColumnKind::Text
    } else if COUNT.contains(&name) {
        ColumnKind::Count
    } else if name == "outcome_step" {
        ColumnKind::OptionalCount
    } else {
        ColumnKind::Float
    }
}

/// Writes the Parquet copy of each of [`TABLES`] whose CSV is in `out`;
/// returns the files written.
pub fn write_tables(out: &OutputDir) -> Result<Vec<PathBuf>, OutputError> {
    let mut written = Vec::new();
    for table in TABLES {
        if out.path().join(format!("{table}.csv")).is_file() {
            written.push(write_table(out, table)?);
        }
    }
    Ok(written)
}

/// Writes `TABLE.parquet` from `TABLE.csv` of `out` (a table of [`TABLES`]).
pub fn write_table(out: &OutputDir, table: &str) -> Result<PathBuf, OutputError> {
    let csv_path = out.path().join(format!("{table}.csv"));
    let invalid = |message: String| OutputError::Invalid {
        path: csv_path.clone(),
        message,
    };
    let file = crate::output::read_regular(&csv_path).map_err(|e| invalid(e.to_string()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| invalid(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let kinds: Vec<ColumnKind> = header.iter().map(|h| column_kind(h)).collect();
    let fields = header
        .iter()
        .zip(&kinds)
        .map(|(name, kind)| {
            let (physical, repetition, logical) = match kind {
                ColumnKind::Count => (Physical::INT64, Repetition::REQUIRED, None),
                ColumnKind::OptionalCount => (Physical::INT64, Repetition::OPTIONAL, None),
                ColumnKind::Float => (Physical::DOUBLE, Repetition::OPTIONAL, None),
                ColumnKind::Text => (
                    Physical::BYTE_ARRAY,
                    Repetition::OPTIONAL,
                    Some(LogicalType::String),
                ),
            };
            Type::primitive_type_builder(name, physical)
                .with_repetition(repetition)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    let schema = Arc::new(
        Type::group_type_builder("psim")
            .with_fields(fields)
            .build()
            .map_err(|e| invalid(e.to_string()))?,
    );
    out.write_with(&format!("{table}.parquet"), |w| {
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer =
            SerializedFileWriter::new(w, schema, props).map_err(std::io::Error::other)?;
        let mut record = csv::ByteRecord::new();
        let mut row = 0usize;
        loop {
            // One row group, parsed cell by cell into typed buffers (no
            // string per cell: 10⁶ rows × 17 columns took seconds that way).
            let mut columns: Vec<Column> = kinds.iter().map(|k| Column::new(*k)).collect();
            let mut rows = 0;
            while rows < ROW_GROUP
                && reader
                    .read_byte_record(&mut record)
                    .map_err(std::io::Error::other)?
            {
                row += 1;
                if record.len() != header.len() {
                    return Err(std::io::Error::other(format!(
                        "row {row} has {} cells, the header {}",
                        record.len(),
                        header.len()
                    )));
                }
                for ((c, cell), name) in columns.iter_mut().zip(record.iter()).zip(&header) {
                    c.push(cell).map_err(|e| {
                        std::io::Error::other(format!("row {row}, column `{name}`: {e}"))
                    })?;
                }
                rows += 1;
            }
            if rows == 0 {
                break;
            }
            let mut group = writer.next_row_group().map_err(std::io::Error::other)?;
            for (c, name) in columns.iter().zip(&header) {
                let mut column = group
                    .next_column()
                    .map_err(std::io::Error::other)?
                    .ok_or_else(|| std::io::Error::other("fewer columns than the schema"))?;
                c.write(&mut column)
                    .map_err(|e| std::io::Error::other(format!("column `{name}`: {e}")))?;
                column.close().map_err(std::io::Error::other)?;
            }
            group.close().map_err(std::io::Error::other)?;
            if rows < ROW_GROUP {
                break;
            }
        }
        writer.close().map_err(std::io::Error::other)?;
        Ok(())
    })
    .map_err(|e| match e {
        OutputError::Io { cause, .. } => invalid(cause.to_string()),
        other => other,
    })
}

/// One column of a row group: its values, and a definition level per row
/// (1: a value, 0: null) for the optional columns.
enum Column {
    Count(Vec<i64>),
    OptionalCount(Vec<i64>, Vec<i16>),
    Float(Vec<f64>, Vec<i16>),
    Text(Vec<ByteArray>, Vec<i16>),
}

impl Column {
    fn new(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Count => Column::Count(Vec::new()),
            ColumnKind::OptionalCount => Column::OptionalCount(Vec::new(), Vec::new()),
            ColumnKind::Float => Column::Float(Vec::new(), Vec::new()),
            ColumnKind::Text => Column::Text(Vec::new(), Vec::new()),
        }
    }

    /// Adds one CSV cell: an empty cell is a null (refused in a count column).
    fn push(&mut self, cell: &[u8]) -> Result<(), String> {
        let text = || String::from_utf8_lossy(cell).into_owned();
        let int = || -> Result<i64, String> {
            std::str::from_utf8(cell)
                .ok()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("`{}` is not a count", text()))
        };
        match self {
            Column::Count(v) => {
                if cell.is_empty() {
                    return Err("an empty cell in a count column".into());
                }
                v.push(int()?);
            }
            Column::OptionalCount(v, d) => {
                d.push(i16::from(!cell.is_empty()));
                if !cell.is_empty() {
                    v.push(int()?);
                }
            }
            Column::Float(v, d) => {
                d.push(i16::from(!cell.is_empty()));
                if !cell.is_empty() {
                    let x = std::str::from_utf8(cell)
                        .ok()
                        .and_then(|c| c.parse::<f64>().ok())
                        .ok_or_else(|| format!("`{}` is not a number", text()))?;
                    v.push(x);
                }
            }
            Column::Text(v, d) => {
                d.push(i16::from(!cell.is_empty()));
                if !cell.is_empty() {
                    v.push(ByteArray::from(cell.to_vec()));
                }
            }
        }
        Ok(())
    }

    /// Writes the column chunk.
    fn write(
        &self,
        column: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    ) -> Result<(), String> {
        let e = |e: parquet::errors::ParquetError| e.to_string();
        match self {
            Column::Count(v) => column.typed::<Int64Type>().write_batch(v, None, None),
            Column::OptionalCount(v, d) => {
                column.typed::<Int64Type>().write_batch(v, Some(d), None)
            }
            Column::Float(v, d) => column.typed::<DoubleType>().write_batch(v, Some(d), None),
            Column::Text(v, d) => column
                .typed::<ByteArrayType>()
                .write_batch(v, Some(d), None),
        }
        .map(|_| ())
        .map_err(e)
    }
}
