//! Data sets: the classic small sets bundled in smartcore (no download at run time) and a
//! CSV loader for a user's own table.

use std::path::Path;

use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// A classification data set: one row of features per example, labels `0..classes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Name, for reports.
    pub name: String,
    /// Features, `examples x features`.
    pub x: Array2<f32>,
    /// Labels in `0..classes`.
    pub y: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

/// The bundled data sets.
pub const BUILTIN: [&str; 3] = ["digits", "breast_cancer", "iris"];

/// Why a data set could not be loaded.
#[derive(Debug, Error)]
pub enum DataError {
    /// No bundled set has this name.
    #[error("unknown dataset {name:?}; bundled sets are {}, or give a CSV file path", BUILTIN.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The CSV file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A CSV record is malformed.
    #[error("{path}, line {line}: {reason}")]
    Csv {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The table has no examples, or fewer than two classes.
    #[error("{0}")]
    Unusable(String),
}

/// Loads a bundled set by name.
pub fn builtin(name: &str) -> Result<Dataset, DataError> {
    use smartcore::dataset::{breast_cancer, digits, iris};
    let (x, y, rows, cols) = match name {
        "digits" => {
            let d = digits::load_dataset();
            let y = d.target.iter().map(|&v| v as usize).collect();
            (d.data, y, d.num_samples, d.num_features)
        }
        "breast_cancer" => {
            let d = breast_cancer::load_dataset();
            let y = d.target.iter().map(|&v| v as usize).collect();
            (d.data, y, d.num_samples, d.num_features)
        }
        "iris" => {
            let d = iris::load_dataset();
            let y = d.target.iter().map(|&v| v as usize).collect();
            (d.data, y, d.num_samples, d.num_features)
        }
        _ => return Err(DataError::Unknown { name: name.into() }),
    };
    let x = Array2::from_shape_vec((rows, cols), x)
        .map_err(|e| DataError::Unusable(format!("{name}: {e}")))?;
    Dataset::new(name, x, y)
}

/// Loads a CSV file with a header row: every column but `label` holds numbers; `label`
/// (default: the last column) holds class names or numbers, mapped to `0..classes` in
/// sorted order.
pub fn load_csv(path: &Path, label: Option<&str>) -> Result<Dataset, DataError> {
    let shown = path.display().to_string();
    let mut reader = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: shown.clone(),
            source,
        },
        other => DataError::Csv {
            path: shown.clone(),
            line: 1,
            reason: format!("{other:?}"),
        },
    })?;
    let headers = reader
        .headers()
        .map_err(|e| DataError::Csv {
            path: shown.clone(),
            line: 1,
            reason: e.to_string(),
        })?
        .clone();
    if headers.len() < 2 {
        return Err(DataError::Csv {
            path: shown,
            line: 1,
            reason: "need at least one feature and one label column".into(),
        });
    }
    let label_col = match label {
        None => headers.len() - 1,
        Some(name) => headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataError::Csv {
                path: shown.clone(),
                line: 1,
                reason: format!(
                    "no column named {name:?}; columns are {}",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            })?,
    };
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = record.map_err(|e| DataError::Csv {
            path: shown.clone(),
            line,
            reason: e.to_string(),
        })?;
        if record.len() != headers.len() {
            return Err(DataError::Csv {
                path: shown,
                line,
                reason: format!("{} fields, the header has {}", record.len(), headers.len()),
            });
        }
        for (c, field) in record.iter().enumerate() {
            if c == label_col {
                labels.push(field.trim().to_string());
                continue;
            }
            let v: f32 = field
                .trim()
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| DataError::Csv {
                    path: shown.clone(),
                    line,
                    reason: format!("column {:?} is not a finite number: {field:?}", &headers[c]),
                })?;
            features.push(v);
        }
    }
    let mut names: Vec<String> = labels.clone();
    names.sort();
    names.dedup();
    let y = labels
        .iter()
        .map(|l| names.binary_search(l).expect("label listed"))
        .collect::<Vec<_>>();
    let cols = headers.len() - 1;
    let x = Array2::from_shape_vec((labels.len(), cols), features)
        .map_err(|e| DataError::Unusable(e.to_string()))?;
    let name = path
        .file_stem()
        .map_or("csv".into(), |s| s.to_string_lossy().into_owned());
    Dataset::new(&name, x, y)
}

/// Loads a participant's own CSV table for a task: a header row naming the task's label
/// column and its feature columns (every column but the label, in order, when the schema
/// names none), label values from the task's class list, and numbers everywhere else.
/// The task's preprocessing is applied. `inputs` is the model's input width.
pub fn load_for_task(
    path: &Path,
    schema: &fl_core::DataSchema,
    inputs: usize,
) -> Result<Dataset, DataError> {
    let shown = path.display().to_string();
    let csv_error = |line: u64, reason: String| DataError::Csv {
        path: shown.clone(),
        line,
        reason,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: shown.clone(),
            source,
        },
        other => csv_error(1, format!("{other:?}")),
    })?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(1, e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let label_col = headers
        .iter()
        .position(|h| h == &schema.label)
        .ok_or_else(|| csv_error(1, format!("no column {:?}, the task's label", schema.label)))?;
    // The table's column of each model input, in input order.
    let columns: Vec<usize> = if schema.features.is_empty() {
        let cols: Vec<usize> = (0..headers.len()).filter(|&c| c != label_col).collect();
        if cols.len() != inputs {
            return Err(csv_error(
                1,
                format!(
                    "{} feature columns, but the task's model takes {inputs}",
                    cols.len()
                ),
            ));
        }
        cols
    } else {
        if let Some(extra) = headers
            .iter()
            .find(|h| *h != &schema.label && !schema.features.contains(h))
        {
            return Err(csv_error(
                1,
                format!("column {extra:?} is not in the task's schema"),
            ));
        }
        schema
            .features
            .iter()
            .map(|f| {
                headers
                    .iter()
                    .position(|h| h == f)
                    .ok_or_else(|| csv_error(1, format!("no column {f:?}, a feature of the task")))
            })
            .collect::<Result<_, _>>()?
    };
    let mut features = Vec::new();
    let mut y = Vec::new();
    let mut row = vec![0.0f32; inputs];
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = record.map_err(|e| csv_error(line, e.to_string()))?;
        if record.len() != headers.len() {
            return Err(csv_error(
                line,
                format!("{} fields, the header has {}", record.len(), headers.len()),
            ));
        }
        let label = record[label_col].trim();
        let class = schema
            .classes
            .iter()
            .position(|c| c == label)
            .ok_or_else(|| {
                csv_error(
                    line,
                    format!(
                        "label {label:?} is not one of the task's classes ({})",
                        schema.classes.join(", ")
                    ),
                )
            })?;
        for (v, &c) in row.iter_mut().zip(&columns) {
            let field = &record[c];
            *v = field
                .trim()
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| {
                    csv_error(
                        line,
                        format!("column {:?} is not a finite number: {field:?}", &headers[c]),
                    )
                })?;
        }
        schema.preprocess.apply(&mut row);
        features.extend_from_slice(&row);
        y.push(class);
    }
    if y.is_empty() {
        return Err(DataError::Unusable(format!("{shown}: no rows")));
    }
    let x = Array2::from_shape_vec((y.len(), inputs), features)
        .map_err(|e| DataError::Unusable(e.to_string()))?;
    Ok(Dataset {
        name: path
            .file_stem()
            .map_or("csv".into(), |s| s.to_string_lossy().into_owned()),
        x,
        y,
        classes: schema.classes.len(),
    })
}

/// Writes `data` as a CSV table with feature columns `x0`, `x1`, ... and a `label` column
/// holding the class index (what a bundled set's shard looks like to [`load_for_task`]).
pub fn write_csv(data: &Dataset, path: &Path) -> Result<(), DataError> {
    let io = |source: std::io::Error| DataError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(|e| io(e.into()))?;
    let mut header: Vec<String> = (0..data.features()).map(|i| format!("x{i}")).collect();
    header.push("label".into());
    w.write_record(&header).map_err(|e| io(e.into()))?;
    for (row, y) in data.x.outer_iter().zip(&data.y) {
        let mut record: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        record.push(y.to_string());
        w.write_record(&record).map_err(|e| io(e.into()))?;
    }
    w.flush().map_err(io)
}

impl Dataset {
    /// Checks shape and labels; classes are `max label + 1`.
    pub fn new(name: &str, x: Array2<f32>, y: Vec<usize>) -> Result<Self, DataError> {
        if x.nrows() == 0 || x.nrows() != y.len() {
            return Err(DataError::Unusable(format!(
                "{name}: {} rows of features, {} labels",
                x.nrows(),
                y.len()
            )));
        }
        let classes = y.iter().max().map_or(0, |m| m + 1);
        if classes < 2 {
            return Err(DataError::Unusable(format!(
                "{name}: needs at least two classes"
            )));
        }
        Ok(Dataset {
            name: name.into(),
            x,
            y,
            classes,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no examples (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of features.
    pub fn features(&self) -> usize {
        self.x.ncols()
    }

    /// The examples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            name: self.name.clone(),
            x: self.x.select(Axis(0), idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            classes: self.classes,
        }
    }

    /// A shuffled split into (train, test) with `test_fraction` of the examples in test.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let test = ((self.len() as f64) * test_fraction).round() as usize;
        let (t, r) = idx.split_at(test.min(self.len()));
        (self.subset(r), self.subset(t))
    }

    /// Standardises every feature with the mean and standard deviation of `self` (the
    /// training set), applied to `self` and `others`; constant features become 0. Returns
    /// the same transformation as a task spec states it (offset the mean, scale the
    /// inverse standard deviation).
    pub fn standardize(&mut self, others: &mut [&mut Dataset]) -> fl_core::Preprocess {
        let mean = self.x.mean_axis(Axis(0)).expect("non-empty");
        let std = self
            .x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-12 { s } else { 1.0 });
        for d in std::iter::once(&mut *self).chain(others.iter_mut().map(|d| &mut **d)) {
            d.x -= &mean;
            d.x /= &std;
        }
        fl_core::Preprocess::Affine {
            offset: mean.to_vec(),
            scale: std.iter().map(|s| 1.0 / s).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bundled_sets_have_their_documented_shapes() {
        let d = builtin("digits").unwrap();
        assert_eq!((d.len(), d.features(), d.classes), (1797, 64, 10));
        let b = builtin("breast_cancer").unwrap();
        assert_eq!((b.len(), b.features(), b.classes), (569, 30, 2));
        assert!(matches!(builtin("mnist"), Err(DataError::Unknown { .. })));
    }

    #[test]
    fn split_and_standardize() {
        let d = builtin("iris").unwrap();
        let (mut train, mut test) = d.split(0.2, 7);
        assert_eq!(train.len() + test.len(), d.len());
        assert_eq!(test.len(), 30);
        train.standardize(&mut [&mut test]);
        let m = train.x.mean_axis(Axis(0)).unwrap();
        assert!(m.iter().all(|v| v.abs() < 1e-4), "{m}");
    }

    #[test]
    fn csv_loader_maps_labels_and_reports_malformed_lines() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "a,b,kind\n1,2,cat\n3,4,dog\n5,6,cat").unwrap();
        let d = load_csv(f.path(), None).unwrap();
        assert_eq!(d.y, vec![0, 1, 0]);
        assert_eq!(d.x.row(1).to_vec(), vec![3.0, 4.0]);
        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "a,b,kind\n1,2,cat\n3,x,dog").unwrap();
        let e = load_csv(bad.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("line 3: column \"b\" is not a finite number: \"x\""),
            "{e}"
        );
        let e = load_csv(f.path(), Some("label")).unwrap_err().to_string();
        assert!(e.contains("no column named \"label\""), "{e}");
        let e = load_csv(Path::new("/nonexistent.csv"), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read /nonexistent.csv"), "{e}");
    }

    fn schema(features: &[&str]) -> fl_core::DataSchema {
        fl_core::DataSchema {
            features: features.iter().map(|f| f.to_string()).collect(),
            label: "kind".into(),
            classes: vec!["dog".into(), "cat".into(), "bird".into()],
            preprocess: fl_core::Preprocess::Affine {
                offset: vec![1.0, 0.0],
                scale: vec![1.0, 0.5],
            },
        }
    }

    #[test]
    fn a_table_is_read_by_the_task_schema_and_preprocessed() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "b,kind,a\n2,cat,1\n4,dog,3").unwrap();
        // Named features: columns are found by name, classes keep the task's order
        // even when a class (bird) is absent from this table.
        let d = load_for_task(f.path(), &schema(&["a", "b"]), 2).unwrap();
        assert_eq!(d.y, vec![1, 0]);
        assert_eq!(d.classes, 3);
        assert_eq!(d.x.row(0).to_vec(), vec![0.0, 1.0]);
        assert_eq!(d.x.row(1).to_vec(), vec![2.0, 2.0]);
        // Unnamed features: every other column, in the table's order.
        let d = load_for_task(f.path(), &schema(&[]), 2).unwrap();
        assert_eq!(d.x.row(0).to_vec(), vec![1.0, 0.5]);
    }

    #[test]
    fn a_table_that_does_not_fit_the_task_gets_a_one_line_reason() {
        let table = |text: &str| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            writeln!(f, "{text}").unwrap();
            f
        };
        let cases = [
            (
                "a,b,label\n1,2,cat",
                &["a", "b"][..],
                "no column \"kind\", the task's label",
            ),
            (
                "a,c,kind\n1,2,cat",
                &["a", "b"][..],
                "column \"c\" is not in the task's schema",
            ),
            (
                "a,kind\n1,cat",
                &["a", "b"][..],
                "no column \"b\", a feature of the task",
            ),
            (
                "a,b,kind\n1,2,fish",
                &["a", "b"][..],
                "line 2: label \"fish\" is not one of the task's classes (dog, cat, bird)",
            ),
            (
                "a,b,c,kind\n1,2,3,cat",
                &[][..],
                "3 feature columns, but the task's model takes 2",
            ),
            (
                "a,b,kind\n1,inf,cat",
                &["a", "b"][..],
                "column \"b\" is not a finite number",
            ),
            ("a,b,kind", &["a", "b"][..], "no rows"),
        ];
        for (text, features, reason) in cases {
            let f = table(text);
            let e = load_for_task(f.path(), &schema(features), 2)
                .unwrap_err()
                .to_string();
            assert!(e.contains(reason), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_written_shard_reads_back_under_an_unnamed_schema() {
        let d = builtin("iris").unwrap();
        let f = tempfile::NamedTempFile::new().unwrap();
        write_csv(&d, f.path()).unwrap();
        let mut s = fl_core::TaskSpec::unnamed(
            fl_core::ModelSpec::Logreg {
                inputs: 4,
                classes: 3,
            },
            "label",
        );
        s.data.preprocess = fl_core::Preprocess::None;
        let back = load_for_task(f.path(), &s.data, 4).unwrap();
        assert_eq!(back.x, d.x);
        assert_eq!(back.y, d.y);
    }
}
