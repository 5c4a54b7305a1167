//! `WeightStore`: every weight of a checkpoint by name, from one safetensors file or from the
//! shards listed by a `model.safetensors.index.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::LoadError;
use super::file::SafetensorsFile;
use super::index::{self, INDEX_FILE};
use super::TensorInfo;
use crate::dtype::DType;
use crate::tensor::Tensor;

/// File name of a single-file checkpoint in a Hugging Face folder.
pub const SINGLE_FILE: &str = "model.safetensors";

/// The weights of one checkpoint.
#[derive(Debug)]
pub struct WeightStore {
    path: PathBuf,
    index: Option<PathBuf>,
    index_metadata: Option<Value>,
    files: Vec<SafetensorsFile>,
    /// Name -> (file, tensor within that file).
    by_name: HashMap<String, (usize, usize)>,
    /// Names in order: files in order, header order within each.
    order: Vec<(usize, usize)>,
}

impl WeightStore {
    /// Opens `path`: a `.safetensors` file, a shard index (`*.index.json`), or a folder holding
    /// `model.safetensors` or else `model.safetensors.index.json`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|error| LoadError::Io {
            path: path.to_path_buf(),
            action: "open",
            error,
        })?;
        if meta.is_dir() {
            let single = path.join(SINGLE_FILE);
            if single.exists() {
                return Ok(Self::from_file(SafetensorsFile::open(single)?));
            }
            let index = path.join(INDEX_FILE);
            if index.exists() {
                return Self::open_index(index);
            }
            return Err(LoadError::NoWeights {
                dir: path.to_path_buf(),
            });
        }
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(".index.json"))
        {
            return Self::open_index(path);
        }
        Ok(Self::from_file(SafetensorsFile::open(path)?))
    }

    /// A store over one already-open file.
    pub fn from_file(file: SafetensorsFile) -> Self {
        let order: Vec<(usize, usize)> = (0..file.len()).map(|t| (0, t)).collect();
        let by_name = order
            .iter()
            .map(|&(f, t)| (file.tensors()[t].name.clone(), (f, t)))
            .collect();
        WeightStore {
            path: file.path().to_path_buf(),
            index: None,
            index_metadata: None,
            files: vec![file],
            by_name,
            order,
        }
    }

    /// Opens the shard index at `index` and every shard it names (sorted by file name).
    /// Only tensors listed in `weight_map` are served, each from the shard the index names.
    pub fn open_index(index: impl AsRef<Path>) -> Result<Self, LoadError> {
        let index = index.as_ref();
        let text = std::fs::read(index).map_err(|error| LoadError::Io {
            path: index.to_path_buf(),
            action: "read",
            error,
        })?;
        let parsed = index::parse(index, &text)?;
        let dir = index.parent().unwrap_or(Path::new(""));

        // Shard file name -> the tensors the index puts in it.
        let mut shards: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (tensor, shard) in &parsed.weight_map {
            shards.entry(shard).or_default().push(tensor);
        }
        let mut files = Vec::with_capacity(shards.len());
        let mut by_name = HashMap::with_capacity(parsed.weight_map.len());
        let mut order = Vec::with_capacity(parsed.weight_map.len());
        for (f, (shard, tensors)) in shards.into_iter().enumerate() {
            let file = match SafetensorsFile::open(dir.join(shard)) {
                Ok(file) => file,
                Err(LoadError::Io { error, .. })
                    if error.kind() == std::io::ErrorKind::NotFound =>
                {
                    return Err(LoadError::MissingShard {
                        index: index.to_path_buf(),
                        shard: shard.to_string(),
                        tensor: tensors[0].to_string(),
                        error,
                    });
                }
                Err(e) => return Err(e),
            };
            for tensor in tensors {
                if !file.contains(tensor) {
                    return Err(LoadError::IndexTensorMissing {
                        index: index.to_path_buf(),
                        shard: shard.to_string(),
                        tensor: tensor.to_string(),
                    });
                }
                by_name.insert(tensor.to_string(), (f, usize::MAX));
            }
            // Serve in the shard's header order; record each tensor's position in its file.
            for (t, info) in file.tensors().iter().enumerate() {
                if let Some(slot) = by_name.get_mut(&info.name) {
                    if slot.0 == f {
                        *slot = (f, t);
                        order.push((f, t));
                    }
                }
            }
            files.push(file);
        }
        Ok(WeightStore {
            path: index.to_path_buf(),
            index: Some(index.to_path_buf()),
            index_metadata: parsed.metadata,
            files,
            by_name,
            order,
        })
    }

    /// What was opened: the safetensors file or the index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The shard index, for a sharded checkpoint.
    pub fn index_path(&self) -> Option<&Path> {
        self.index.as_deref()
    }

    /// The index's `metadata` object (e.g. `total_size`), for a sharded checkpoint.
    pub fn index_metadata(&self) -> Option<&Value> {
        self.index_metadata.as_ref()
    }

    /// The mapped files: one, or the shards sorted by name.
    pub fn files(&self) -> &[SafetensorsFile] {
        &self.files
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Tensor names: files in order, header order within each file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors().map(|t| t.name.as_str())
    }

    /// Every tensor's info, in [`names`](Self::names) order.
    pub fn tensors(&self) -> impl Iterator<Item = &TensorInfo> {
        self.order.iter().map(|&(f, t)| &self.files[f].tensors()[t])
    }

    fn file_of(&self, name: &str) -> Result<&SafetensorsFile, LoadError> {
        self.by_name
            .get(name)
            .map(|&(f, _)| &self.files[f])
            .ok_or_else(|| LoadError::TensorNotFound {
                file: self.path.clone(),
                tensor: name.to_string(),
            })
    }

    /// Dtype, shape, byte range and file of `name`; any safetensors dtype.
    pub fn info(&self, name: &str) -> Result<&TensorInfo, LoadError> {
        self.file_of(name)?.info(name)
    }

    /// The raw bytes of `name`, read in place; any safetensors dtype.
    pub fn bytes(&self, name: &str) -> Result<&[u8], LoadError> {
        self.file_of(name)?.bytes(name)
    }

    /// `name` as a tensor over the mapped file (no copy). See [`SafetensorsFile::get`].
    pub fn get(&self, name: &str) -> Result<Tensor, LoadError> {
        self.file_of(name)?.get(name)
    }

    /// [`get`](Self::get) with a dtype (when given) and shape check naming the tensor.
    pub fn get_expect(
        &self,
        name: &str,
        dtype: Option<DType>,
        shape: &[usize],
    ) -> Result<Tensor, LoadError> {
        self.file_of(name)?.get_expect(name, dtype, shape)
    }
}
