// dbpulse pages' shared live connection: the token, the connection badge and the /ws/viz
// WebSocket with reconnects. Plain JS, no third-party code; loaded before each page's script,
// which calls dbpulseLive.follow(handlers).
window.dbpulseLive = (() => {
  "use strict";

  // With a token set on the server, open a page as /?token=... or /events?token=... : the page
  // passes it on to the viewing endpoints and the socket (which accept it as ?token=).
  const TOKEN = new URLSearchParams(location.search).get("token");
  const withToken = (path) =>
    TOKEN ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}` : path;
  const $ = (id) => document.getElementById(id);
  let state = "connecting";

  // The badge (#conn): "live", "reconnecting (n)" or "offline", with a tooltip.
  function setConn(value, title) {
    state = value;
    const el = $("conn");
    el.className = `conn ${value.split(" ")[0]}`;
    el.textContent = value;
    el.title = title || "WebSocket connection to the viz server";
  }

  // Follow /ws/viz: onOpen() on each (re)connect, onMessage(data) for each JSON message;
  // reconnects with backoff (250 ms doubling to 5 s), "offline" after 8 tries in a row.
  function follow({ onOpen, onMessage }) {
    let retry = 0;
    const connect = () => {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const socket = new WebSocket(withToken(`${scheme}://${location.host}/ws/viz`));
      socket.onopen = () => {
        retry = 0;
        setConn("live");
        onOpen();
      };
      socket.onmessage = (message) => {
        let data;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        onMessage(data);
      };
      socket.onclose = () => {
        retry += 1;
        setConn(retry > 8 ? "offline" : `reconnecting (${retry})`);
        setTimeout(connect, Math.min(5000, 250 * 2 ** Math.min(retry, 5)));
      };
      socket.onerror = () => socket.close();
    };
    connect();
  }

  return { $, withToken, setConn, follow, connection: () => state };
})();
