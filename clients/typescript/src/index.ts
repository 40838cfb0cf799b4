/** gameserver's TypeScript/JavaScript client: the runtime (gate, auth, chat) and the generated typed layer. */

export {
  Auth,
  jwtClaims,
  type AuthEvents,
  type AuthOptions,
  type FetchLike,
  type FetchResponse,
  type Nonce,
  type Session,
} from "./auth.js";
export { backoffDelay, DEFAULT_RECONNECT, type ReconnectOptions } from "./backoff.js";
export {
  ChatClient,
  chatLine,
  parseChannelHistory,
  parseChatLine,
  parseChatMessage,
  type ChatChannel,
  type ChatEvents,
  type ChannelHistory,
  type ChatIdentity,
  type ChatMessage,
  type ChatOptions,
  type ChatState,
  type HistoryOptions,
} from "./chat.js";
export type { Encoding } from "./codec.js";
export {
  CallError,
  CallTimeoutError,
  ChatError,
  ClientErrorCodes,
  ConnectionError,
  GameServerError,
  HttpError,
  isError,
} from "./errors.js";
export {
  GateClient,
  type CallOptions,
  type Caller,
  type GateEvents,
  type GateOptions,
  type GateState,
  type TokenSource,
  type WhileDisconnected,
} from "./gate.js";
export type { ResumeFailure, ResumeGrant } from "./resume.js";
export type { SocketLike, WebSocketClass } from "./socket.js";
export * from "./generated/index.js";
