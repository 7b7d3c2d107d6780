//! Tools made from async functions with typed arguments.

use super::{Tool, ToolContext, ToolOutput};
use crate::Error;
use async_trait::async_trait;
use errand_protocol::JsonObject;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

type Handler<A> =
    Box<dyn Fn(A, ToolContext) -> BoxFuture<'static, Result<ToolOutput, Error>> + Send + Sync>;

/// A [`Tool`] from an async function whose arguments are a type with a derived schema.
///
/// ```
/// use errand_runtime::tool::{FunctionTool, Tool, ToolContext};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Add {
///     /// The first number.
///     a: i64,
///     /// The second number.
///     b: i64,
/// }
///
/// let add = FunctionTool::new("add", "Adds two numbers.", |args: Add, _context| async move {
///     Ok((args.a + args.b).to_string().into())
/// });
/// assert_eq!(add.parameters()["required"], serde_json::json!(["a", "b"]));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let args = serde_json::json!({"a": 2, "b": 3}).as_object().unwrap().clone();
/// let answer = add.call(args, ToolContext::detached("c1")).await.unwrap();
/// assert_eq!(answer.content, "5");
/// # });
/// ```
pub struct FunctionTool<A> {
    name: String,
    description: String,
    parameters: Value,
    handler: Handler<A>,
    args: PhantomData<fn(A)>,
}

impl<A: DeserializeOwned + JsonSchema + Send + 'static> FunctionTool<A> {
    /// A tool named `name` that runs `handler` with its arguments read as `A`.
    pub fn new<F, Fut>(name: impl Into<String>, description: impl Into<String>, handler: F) -> Self
    where
        F: Fn(A, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ToolOutput, Error>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            parameters: parameters_of::<A>(),
            handler: Box::new(move |args, context| Box::pin(handler(args, context))),
            args: PhantomData,
        }
    }
}

#[async_trait]
impl<A: DeserializeOwned + JsonSchema + Send + 'static> Tool for FunctionTool<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    async fn call(&self, args: JsonObject, context: ToolContext) -> Result<ToolOutput, Error> {
        let args = arguments_of(&self.name, args)?;
        (self.handler)(args, context).await
    }
}

impl<A> fmt::Debug for FunctionTool<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionTool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The JSON schema of the argument type `A`, as providers want it: a bare object schema (the
/// title and meta-schema only cost tokens).
pub(crate) fn parameters_of<A: JsonSchema>() -> Value {
    let mut parameters = schemars::schema_for!(A).to_value();
    if let Some(object) = parameters.as_object_mut() {
        object.remove("$schema");
        object.remove("title");
    }
    parameters
}

/// A call's arguments read as `A`, or the error the model reads when they do not fit.
pub(crate) fn arguments_of<A: DeserializeOwned>(tool: &str, args: JsonObject) -> Result<A, Error> {
    serde_json::from_value(Value::Object(args)).map_err(|error| {
        Error::failed(
            "ToolArgumentsError",
            format!("the arguments do not fit the tool `{tool}`: {error}"),
        )
    })
}
