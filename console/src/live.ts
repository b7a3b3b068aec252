import { session } from './api/client';

/**
 * Live changes of images: the service's event stream (GET /events/stream, Server-Sent Events) read with
 * fetch so the token goes in the Authorization header, resumed with Last-Event-ID after a cut. When the
 * service has no event stream (404: a service without the events module), `onFallback` is called once and the
 * caller polls instead.
 */
export function watchEvents(onEvent: (imageId: string | null, type: string) => void, onFallback: () => void, onLive: () => void): () => void {
  const ac = new AbortController();
  let lastId: string | undefined;
  let stopped = false;
  const run = async () => {
    while (!stopped) {
      try {
        const headers: Record<string, string> = { Accept: 'text/event-stream', Authorization: `Bearer ${session.token ?? ''}` };
        if (lastId) headers['Last-Event-ID'] = lastId;
        const res = await fetch('/events/stream', { headers, signal: ac.signal });
        if (res.status === 404 || res.status === 405) return onFallback();
        if (!res.ok || !res.body) throw new Error(String(res.status));
        onLive();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let type = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('id: ')) lastId = line.slice(4);
              else if (line.startsWith('event: ')) type = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (!data) continue;
            try {
              onEvent((JSON.parse(data) as { imageId?: string | null }).imageId ?? null, type);
            } catch {
              // not JSON: ignore
            }
          }
        }
      } catch {
        if (stopped) return;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  };
  void run();
  return () => {
    stopped = true;
    ac.abort();
  };
}
