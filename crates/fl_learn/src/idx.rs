//! IDX files, the format of MNIST and Fashion-MNIST (LeCun et al.): a magic number whose
//! third byte is the element type and fourth the number of dimensions, each dimension as
//! a big-endian `u32`, then the elements in row-major order. Only unsigned bytes (type
//! `0x08`) occur in those sets, and only they are read. Files may be gzip-compressed, as
//! Debian's `dataset-fashion-mnist` package ships them.

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::data::{DataError, Dataset};

/// Where Debian's `dataset-fashion-mnist` package puts the set.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The environment variable naming another folder holding the Fashion-MNIST IDX files.
pub const FASHION_MNIST_ENV: &str = "MYCELIX_FL_FASHION_MNIST";

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The dimensions, outermost first (`[images, rows, columns]` for images).
    pub dims: Vec<usize>,
    /// The elements in row-major order.
    pub data: Vec<u8>,
}

/// Parses an IDX array of unsigned bytes; the reason when `bytes` is not one.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, String> {
    let header = bytes
        .get(..4)
        .ok_or("shorter than an IDX header (4 bytes)")?;
    if header[..2] != [0, 0] {
        return Err(format!(
            "not an IDX file: magic {header:02x?} does not start with two zero bytes"
        ));
    }
    if header[2] != 0x08 {
        return Err(format!(
            "IDX element type 0x{:02x}; only unsigned bytes (0x08) are read",
            header[2]
        ));
    }
    let ndim = header[3] as usize;
    let body = 4 + 4 * ndim;
    let dims: Vec<usize> = bytes
        .get(4..body)
        .ok_or(format!(
            "the header promises {ndim} dimensions; the file ends first"
        ))?
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let len = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("the dimensions overflow")?;
    let data = &bytes[body..];
    if data.len() != len {
        return Err(format!(
            "dimensions {dims:?} need {len} bytes of data, the file holds {}",
            data.len()
        ));
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

/// Reads an IDX file, gunzipping it when it is gzip-compressed.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let shown = path.display().to_string();
    let io = |source| DataError::Io {
        path: shown.clone(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(io)?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|reason| DataError::Unusable(format!("{shown}: {reason}")))
}

/// A data set from an IDX image file (`[n, rows, columns]`) and its label file (`[n]`):
/// one feature per pixel, as the bytes hold it (0-255).
pub fn load_idx_pair(name: &str, images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    let x = read_idx(images)?;
    let y = read_idx(labels)?;
    let unusable = |m: String| DataError::Unusable(format!("{name}: {m}"));
    let [n, rows, cols] = x.dims[..] else {
        return Err(unusable(format!(
            "{} holds {} dimensions, images need 3",
            images.display(),
            x.dims.len()
        )));
    };
    if y.dims != [n] {
        return Err(unusable(format!(
            "{n} images but labels of dimensions {:?}",
            y.dims
        )));
    }
    let features =
        Array2::from_shape_vec((n, rows * cols), x.data.iter().map(|&v| v as f32).collect())
            .map_err(|e| unusable(e.to_string()))?;
    Dataset::new(name, features, y.data.iter().map(|&v| v as usize).collect())
}

/// The folder holding Fashion-MNIST: `MYCELIX_FL_FASHION_MNIST` when set, else Debian's.
pub fn fashion_mnist_dir() -> PathBuf {
    std::env::var_os(FASHION_MNIST_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(FASHION_MNIST_DIR))
}

/// Fashion-MNIST's training (60,000) and test (10,000) images from `dir`, 784 pixels of
/// 0-255 each and 10 classes; the files may be gzipped (`*-ubyte.gz`) or not.
pub fn fashion_mnist(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let file = |stem: &str| -> Result<PathBuf, DataError> {
        [format!("{stem}.gz"), stem.to_string()]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                DataError::Unusable(format!(
                    "fashion_mnist: no {stem}(.gz) in {} (install Debian's dataset-fashion-mnist, or set {FASHION_MNIST_ENV} to a folder holding the IDX files)",
                    dir.display()
                ))
            })
    };
    let train = load_idx_pair(
        "fashion_mnist",
        &file("train-images-idx3-ubyte")?,
        &file("train-labels-idx1-ubyte")?,
    )?;
    let test = load_idx_pair(
        "fashion_mnist",
        &file("t10k-images-idx3-ubyte")?,
        &file("t10k-labels-idx1-ubyte")?,
    )?;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An IDX file of `dims` holding `data`.
    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 0x08, dims.len() as u8];
        dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
        out.extend(data);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(bytes).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn parses_dimensions_and_data() {
        let a = parse_idx(&idx(&[2, 1, 3], &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(a.dims, vec![2, 1, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn refuses_what_is_not_an_idx_array_of_bytes() {
        assert!(parse_idx(&[0, 0]).unwrap_err().contains("shorter"));
        assert!(parse_idx(&[1, 0, 8, 1, 0, 0, 0, 0])
            .unwrap_err()
            .contains("not an IDX file"));
        let mut floats = idx(&[1], &[0, 0, 0, 0]);
        floats[2] = 0x0d;
        assert!(parse_idx(&floats).unwrap_err().contains("0x0d"));
        assert!(parse_idx(&idx(&[2, 2], &[1, 2, 3]))
            .unwrap_err()
            .contains("need 4 bytes of data, the file holds 3"));
        assert!(parse_idx(&[0, 0, 8, 2, 0, 0, 0, 1])
            .unwrap_err()
            .contains("promises 2 dimensions"));
    }

    #[test]
    fn reads_a_gzipped_image_set_with_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        // Three 2x2 images, labels 0, 1, 1; images gzipped, labels plain.
        let images = dir.path().join("images.gz");
        let labels = dir.path().join("labels");
        std::fs::write(
            &images,
            gzip(&idx(&[3, 2, 2], &[0, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])),
        )
        .unwrap();
        std::fs::write(&labels, idx(&[3], &[0, 1, 1])).unwrap();
        let d = load_idx_pair("tiny", &images, &labels).unwrap();
        assert_eq!(d.x.shape(), &[3, 4]);
        assert_eq!(d.x.row(0).to_vec(), vec![0.0, 255.0, 1.0, 2.0]);
        assert_eq!(d.y, vec![0, 1, 1]);
        assert_eq!(d.classes, 2);
        // Labels that do not match the images are refused.
        std::fs::write(&labels, idx(&[2], &[0, 1])).unwrap();
        let e = load_idx_pair("tiny", &images, &labels).unwrap_err();
        assert!(e.to_string().contains("3 images but labels"), "{e}");
    }

    /// The real set, as scripts/test.sh installs it (Debian's dataset-fashion-mnist).
    #[test]
    fn fashion_mnist_has_its_published_shape() {
        let (train, test) = fashion_mnist(&fashion_mnist_dir()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(train.x.shape(), &[60_000, 784]);
        assert_eq!(test.x.shape(), &[10_000, 784]);
        assert_eq!((train.classes, test.classes), (10, 10));
        // Balanced classes: 6,000 training and 1,000 test images each.
        for (d, each) in [(&train, 6_000), (&test, 1_000)] {
            let mut counts = [0usize; 10];
            d.y.iter().for_each(|&c| counts[c] += 1);
            assert_eq!(counts, [each; 10]);
        }
        let max = train.x.iter().copied().fold(0.0f32, f32::max);
        assert_eq!(max, 255.0);
    }

    #[test]
    fn a_missing_set_names_the_package_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let e = fashion_mnist(dir.path()).unwrap_err().to_string();
        assert!(e.contains("dataset-fashion-mnist"), "{e}");
    }
}
