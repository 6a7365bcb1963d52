//! Loading an ONNX model with tract, describing its inputs and outputs, and
//! running one inference request against it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::{ApiError, flatten_whitespace};
use crate::protocol::{InferenceRequest, TensorMetadata};
use crate::tensor::{DataType, EncodedTensor, decode_input, encode_tensor};
use crate::working::WorkingMemory;

/// The file name looked for when the model path is a directory.
pub const MODEL_FILE_NAME: &str = "model.onnx";

/// Why a model could not be loaded. The message names the file and the reason.
#[derive(Debug, thiserror::Error)]
#[error("cannot load model {}: {reason}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

impl LoadError {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            reason: flatten_whitespace(&reason.into()),
        }
    }
}

/// One dimension of a model tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(u64),
    /// A named variable size (e.g. a batch dimension `N`); every input that
    /// uses the same name must agree on its value.
    Symbol(String),
    /// A size that depends on other sizes in a way not checked up front.
    Dynamic,
}

/// Name, datatype and shape of one model input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<Dim>,
}

impl TensorSpec {
    /// The protocol's metadata view, with -1 for every variable dimension.
    pub fn metadata(&self) -> TensorMetadata {
        TensorMetadata {
            name: self.name.clone(),
            datatype: self.datatype.as_str().to_owned(),
            shape: self
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => i64::try_from(*n).unwrap_or(-1),
                    Dim::Symbol(_) | Dim::Dynamic => -1,
                })
                .collect(),
        }
    }
}

/// The result of one inference.
#[derive(Debug)]
pub struct Inference {
    /// The requested outputs, encoded.
    pub outputs: Vec<EncodedTensor>,
    /// Time spent running the model (decoding and encoding excluded).
    pub run_time: Duration,
}

/// A loaded, optimized model, ready to run. Cheap to share: the plan is
/// behind an `Arc` and runs concurrently from several threads.
pub struct LoadedModel {
    plan: Arc<TypedRunnableModel>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// What a run takes beyond its decoded inputs, measured at load ([`crate::working`]).
    pub working: WorkingMemory,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("working", &self.working)
            .finish_non_exhaustive()
    }
}

/// Finds the ONNX file for a model path: the file itself, or `model.onnx` in
/// a directory (or the directory's only `.onnx` file).
pub fn resolve_model_file(path: &Path) -> Result<PathBuf, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError::new(path, e.to_string()))?;
    if meta.is_file() {
        return Ok(path.to_owned());
    }
    if !meta.is_dir() {
        return Err(LoadError::new(path, "not a file or a directory"));
    }
    let candidate = path.join(MODEL_FILE_NAME);
    if candidate.is_file() {
        return Ok(candidate);
    }
    let entries = std::fs::read_dir(path).map_err(|e| LoadError::new(path, e.to_string()))?;
    let mut onnx_files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    match onnx_files.len() {
        1 => Ok(onnx_files.remove(0)),
        0 => Err(LoadError::new(
            path,
            format!("the directory has no {MODEL_FILE_NAME}"),
        )),
        n => Err(LoadError::new(
            path,
            format!("the directory has no {MODEL_FILE_NAME} and {n} other .onnx files; name one"),
        )),
    }
}

/// The model name used when none is configured: the directory's name for a
/// directory, the file's stem for a file.
pub fn default_model_name(path: &Path) -> Option<String> {
    let name = if path.is_dir() {
        path.canonicalize().ok()?.file_name()?.to_str()?.to_owned()
    } else {
        path.file_stem()?.to_str()?.to_owned()
    };
    (!name.is_empty()).then_some(name)
}

/// Loads and optimizes the ONNX model at `file` (a file, already resolved).
pub fn load(file: &Path) -> Result<LoadedModel, LoadError> {
    let fail = |stage: &str, e: TractError| LoadError::new(file, format!("{stage}: {e:#}"));
    let bytes = std::fs::read(file).map_err(|e| LoadError::new(file, e.to_string()))?;
    let mut inference = tract_onnx::onnx()
        .model_for_read(&mut bytes.as_slice())
        .map_err(|e| fail("not a readable ONNX model", e))?;
    name_unknown_input_dims(&mut inference).map_err(|e| fail("reading inputs", e))?;

    // Names as the ONNX graph gives them; the order of inputs and outputs is
    // kept through typing and optimization.
    let input_names: Vec<String> = inference
        .input_outlets()
        .map_err(|e| fail("reading inputs", e))?
        .iter()
        .map(|o| inference.node(o.node).name.clone())
        .collect();
    let output_names: Vec<String> = inference
        .output_outlets()
        .map_err(|e| fail("reading outputs", e))?
        .iter()
        .map(|o| {
            inference
                .outlet_label(*o)
                .map(str::to_owned)
                .unwrap_or_else(|| inference.node(o.node).name.clone())
        })
        .collect();

    let typed = inference
        .into_typed()
        .map_err(|e| fail("unsupported model", e))?;
    let inputs = specs(&typed, &input_names, typed.input_outlets(), "input")
        .map_err(|reason| LoadError::new(file, reason))?;
    let outputs = specs(&typed, &output_names, typed.output_outlets(), "output")
        .map_err(|reason| LoadError::new(file, reason))?;
    let plan = typed
        .into_optimized()
        .map_err(|e| fail("cannot optimize model", e))?
        .into_runnable()
        .map_err(|e| fail("cannot plan model", e))?;
    let working = crate::working::measure(&plan, &inputs).unwrap_or_else(|reason| {
        tracing::warn!(
            %reason,
            per_input_byte = crate::working::UNMEASURED_PER_INPUT_BYTE,
            "the model's working memory could not be measured; each run is charged a multiple of its decoded inputs"
        );
        WorkingMemory::unmeasured()
    });
    Ok(LoadedModel {
        plan,
        inputs,
        outputs,
        working,
    })
}

/// ONNX lets an input dimension be unknown without a name (`dim {}`), which
/// tract cannot type. Give each such dimension a fresh symbol of its own, so
/// the model takes any size there, as ONNX means.
fn name_unknown_input_dims(model: &mut InferenceModel) -> TractResult<()> {
    for ix in 0..model.input_outlets()?.len() {
        let mut fact = model.input_fact(ix)?.clone();
        if fact.shape.is_open() {
            continue;
        }
        let unknown: Vec<usize> = fact
            .shape
            .dims()
            .enumerate()
            .filter(|(_, d)| d.concretize().is_none())
            .map(|(i, _)| i)
            .collect();
        if unknown.is_empty() {
            continue;
        }
        for i in unknown {
            let sym = model.symbols.new_with_prefix("unk");
            fact.shape.set_dim(i, TDim::Sym(sym));
        }
        model.set_input_fact(ix, fact)?;
    }
    Ok(())
}

fn specs(
    model: &TypedModel,
    names: &[String],
    outlets: TractResult<&[OutletId]>,
    kind: &str,
) -> Result<Vec<TensorSpec>, String> {
    let outlets = outlets.map_err(|e| format!("reading {kind}s: {e:#}"))?;
    if outlets.len() != names.len() {
        return Err(format!(
            "the model has {} {kind}s after typing but {} before",
            outlets.len(),
            names.len()
        ));
    }
    outlets
        .iter()
        .zip(names)
        .map(|(outlet, name)| {
            let fact = model
                .outlet_fact(*outlet)
                .map_err(|e| format!("{kind} '{name}': {e:#}"))?;
            let datatype = DataType::from_datum(fact.datum_type).ok_or_else(|| {
                format!(
                    "{kind} '{name}' has element type {:?}, which the inference protocol cannot carry",
                    fact.datum_type
                )
            })?;
            let shape = fact
                .shape
                .dims()
                .iter()
                .map(|d| match d {
                    TDim::Val(v) => u64::try_from(*v).map(Dim::Fixed).unwrap_or(Dim::Dynamic),
                    TDim::Sym(s) => Dim::Symbol(s.to_string()),
                    _ => Dim::Dynamic,
                })
                .collect();
            Ok(TensorSpec {
                name: name.clone(),
                datatype,
                shape,
            })
        })
        .collect()
}

impl LoadedModel {
    /// Runs one inference request: checks and decodes the inputs, runs the
    /// plan, and encodes the requested outputs in the order requested (all of
    /// them, in the model's order, when the request names none).
    ///
    /// This is CPU work: call it from a blocking thread, not the async runtime.
    pub fn infer(&self, req: &InferenceRequest<'_>) -> Result<Inference, ApiError> {
        let wanted = self.requested_outputs(req)?;
        let inputs = self.decode_inputs(req)?;
        let started = Instant::now();
        let results = self
            .plan
            .run(inputs)
            // The model loaded and the inputs fit its declared shapes, so a
            // failure here comes from the input values (the protocol's 400).
            .map_err(|e| {
                ApiError::bad_request(flatten_whitespace(&format!("inference failed: {e:#}")))
            })?;
        let run_time = started.elapsed();
        let outputs = wanted
            .into_iter()
            .map(|ix| {
                let name = &self.outputs[ix].name;
                let value = results.get(ix).ok_or_else(|| {
                    ApiError::internal(format!("the model produced no value for output '{name}'"))
                })?;
                encode_tensor(name, value)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Inference { outputs, run_time })
    }

    /// Indexes of the outputs to return, in the order the request names them.
    fn requested_outputs(&self, req: &InferenceRequest<'_>) -> Result<Vec<usize>, ApiError> {
        let requested = match &req.outputs {
            Some(requested) if !requested.is_empty() => requested,
            // Not given (or given empty): every output, in the model's order.
            _ => return Ok((0..self.outputs.len()).collect()),
        };
        let mut wanted = Vec::with_capacity(requested.len());
        for out in requested {
            let ix = self
                .outputs
                .iter()
                .position(|o| o.name == out.name)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown output '{}'; the model's outputs are {}",
                        out.name,
                        names(&self.outputs)
                    ))
                })?;
            if wanted.contains(&ix) {
                return Err(ApiError::bad_request(format!(
                    "output '{}' is requested twice",
                    out.name
                )));
            }
            wanted.push(ix);
        }
        Ok(wanted)
    }

    /// Checks the request's inputs against the model's and decodes them, in
    /// the model's input order.
    fn decode_inputs(&self, req: &InferenceRequest<'_>) -> Result<TVec<TValue>, ApiError> {
        let mut by_model_index: Vec<Option<usize>> = vec![None; self.inputs.len()];
        for (req_ix, input) in req.inputs.iter().enumerate() {
            let ix = self
                .inputs
                .iter()
                .position(|spec| spec.name == input.name)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown input '{}'; the model's inputs are {}",
                        input.name,
                        names(&self.inputs)
                    ))
                })?;
            if by_model_index[ix].replace(req_ix).is_some() {
                return Err(ApiError::bad_request(format!(
                    "input '{}' is given twice",
                    input.name
                )));
            }
        }
        let mut symbols: HashMap<&str, (u64, &str)> = HashMap::new();
        let mut values = TVec::with_capacity(self.inputs.len());
        for (spec, req_ix) in self.inputs.iter().zip(&by_model_index) {
            let Some(req_ix) = req_ix else {
                return Err(ApiError::bad_request(format!(
                    "missing input '{}' ({} {:?})",
                    spec.name,
                    spec.datatype,
                    spec.metadata().shape
                )));
            };
            let input = &req.inputs[*req_ix];
            let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "input '{}': unknown datatype '{}'",
                    input.name, input.datatype
                ))
            })?;
            if datatype != spec.datatype {
                let hint = if datatype == DataType::Bytes {
                    "; this model does not take strings"
                } else {
                    ""
                };
                return Err(ApiError::bad_request(format!(
                    "input '{}': datatype {} does not match the model's {}{hint}",
                    input.name, datatype, spec.datatype
                )));
            }
            check_shape(spec, &input.shape, &mut symbols)?;
            let tensor = decode_input(&input.name, datatype, &input.shape, input.values()?)?;
            values.push(tensor.into_tvalue());
        }
        Ok(values)
    }
}

/// Checks a request shape against a model input's: same rank, fixed
/// dimensions equal, and each named dimension the same across inputs.
fn check_shape<'a>(
    spec: &'a TensorSpec,
    shape: &[u64],
    symbols: &mut HashMap<&'a str, (u64, &'a str)>,
) -> Result<(), ApiError> {
    let mismatch = || {
        ApiError::bad_request(format!(
            "input '{}': shape {:?} does not match the model's {:?}",
            spec.name,
            shape,
            spec.metadata().shape
        ))
    };
    if shape.len() != spec.shape.len() {
        return Err(mismatch());
    }
    for (dim, &got) in spec.shape.iter().zip(shape) {
        match dim {
            Dim::Fixed(want) if *want != got => return Err(mismatch()),
            Dim::Symbol(sym) => {
                let (seen, seen_in) = *symbols.entry(sym.as_str()).or_insert((got, &spec.name));
                if seen != got {
                    return Err(ApiError::bad_request(format!(
                        "input '{}': dimension '{sym}' is {got} here but {seen} in input '{seen_in}'",
                        spec.name
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn names(specs: &[TensorSpec]) -> String {
    let quoted: Vec<String> = specs.iter().map(|s| format!("'{}'", s.name)).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, shape: Vec<Dim>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype: DataType::Fp32,
            shape,
        }
    }

    #[test]
    fn metadata_uses_minus_one_for_variable_dims() {
        let s = spec(
            "x",
            vec![Dim::Symbol("N".into()), Dim::Fixed(3), Dim::Dynamic],
        );
        let m = s.metadata();
        assert_eq!(m.shape, vec![-1, 3, -1]);
        assert_eq!(m.datatype, "FP32");
    }

    #[test]
    fn shapes_are_checked_for_rank_fixed_dims_and_shared_symbols() {
        let a = spec("a", vec![Dim::Symbol("N".into()), Dim::Fixed(4)]);
        let b = spec("b", vec![Dim::Symbol("N".into()), Dim::Fixed(4)]);
        let mut syms = HashMap::new();
        check_shape(&a, &[2, 4], &mut syms).unwrap();
        check_shape(&b, &[2, 4], &mut syms).unwrap();

        let mut syms = HashMap::new();
        let e = check_shape(&a, &[2, 5], &mut syms).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(
            e.message()
                .contains("[2, 5] does not match the model's [-1, 4]")
        );

        let mut syms = HashMap::new();
        let e = check_shape(&a, &[8], &mut syms).unwrap_err();
        assert!(e.message().contains("does not match"));

        let mut syms = HashMap::new();
        check_shape(&a, &[2, 4], &mut syms).unwrap();
        let e = check_shape(&b, &[3, 4], &mut syms).unwrap_err();
        assert!(
            e.message()
                .contains("dimension 'N' is 3 here but 2 in input 'a'"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let e = resolve_model_file(Path::new("/nonexistent/berth/model.onnx")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/berth/model.onnx"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
    }

    #[test]
    fn garbage_is_not_a_model() {
        let dir = std::env::temp_dir().join(format!("berth-ms-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("model.onnx");
        std::fs::write(&file, b"this is not protobuf at all \xff\xfe").unwrap();
        let resolved = resolve_model_file(&dir).unwrap();
        assert_eq!(resolved, file);
        let e = load(&resolved).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("cannot load model {}: ", file.display())));
        assert!(!msg.contains('\n'));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_names_come_from_the_directory_or_file() {
        assert_eq!(
            default_model_name(Path::new("/models/iris.onnx")).as_deref(),
            Some("iris")
        );
        let dir = std::env::temp_dir();
        let expected = dir
            .canonicalize()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(default_model_name(&dir), Some(expected));
    }
}
