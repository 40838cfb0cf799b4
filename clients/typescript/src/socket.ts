/**
 * The WebSocket the SDK drives: the browser's (and Cocos Creator's, Phaser's) global `WebSocket`, the `ws`
 * package's on Node (`import WebSocket from "ws"`, passed as the `WebSocket` option), or an adapter with the
 * same few members (a WeChat mini-game wraps `wx.connectSocket` this way: see docs/clients.md).
 */

export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket class: `new WebSocket(url)`. Typed loosely so that the DOM's, `ws`'s and adapters all fit. */
export type WebSocketClass = new (url: string) => object;

export const OPEN = 1;

export function openSocket(url: string, WebSocket: WebSocketClass | undefined): SocketLike {
  const Class = WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketClass }).WebSocket;
  if (Class === undefined) {
    throw new TypeError("no global WebSocket here: pass one as the `WebSocket` option (on Node: the `ws` package)");
  }
  const socket = new Class(url) as SocketLike;
  socket.binaryType = "arraybuffer";
  return socket;
}
