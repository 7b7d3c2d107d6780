//! What a client and a server in one program add to the wire contract: the typed answer.
//!
//! Over a socket an answer is JSON text and nothing else. In one process the server already
//! holds the answer as a value (the run it just stored, the thread it just read), and the
//! client wants that same value back: encoding it to text and decoding the text again is most
//! of what such a call costs (a run's decode alone is several microseconds of allocation). So a
//! client's in-process transport marks each request with [`InProcessCall`] in the request's
//! extensions, and a server that sees the mark may add the value it answers, as
//! [`InProcessAnswer`], to the response's extensions. The JSON body is sent as always; the value
//! is the one the body encodes, so a client that takes it gets exactly what decoding the body
//! would give. A client that finds no typed answer decodes the body.

/// Marks a request made by a client in the same program as the server, in the request's
/// extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InProcessCall;

/// The value a response's JSON body encodes, added by the server to the response's extensions
/// when the request was an [`InProcessCall`].
#[derive(Debug, Clone, PartialEq)]
pub struct InProcessAnswer<T>(pub T);
