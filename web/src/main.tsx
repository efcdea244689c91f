import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { apiKey, keyNeeded, onKeyChange, setApiKey } from "./api";
import { Monitor } from "./components/Monitor";
import { DownloadDialog, DownloadsButton } from "./dialogs/DownloadDialog";
import { Deployments } from "./pages/Deployments";
import { Library } from "./pages/Library";
import { Playground } from "./pages/Playground";
import { Resources } from "./pages/Resources";
import { Routes } from "./pages/Routes";
import { Running } from "./pages/Running";
import { Settings } from "./pages/Settings";
import { SignIn } from "./pages/SignIn";
import { Usage } from "./pages/Usage";
import "./style.css";

const PAGES = {
  library: "Library",
  deployments: "Deployments",
  routes: "Routes",
  running: "Running models",
  resources: "Resources",
  playground: "Playground",
  usage: "Usage",
  settings: "Settings",
} as const;
type Page = keyof typeof PAGES;

function pageOf(hash: string): Page {
  const name = hash.replace(/^#\/?/, "").split("/")[0];
  return name in PAGES ? (name as Page) : "library";
}

function App() {
  const [page, setPage] = useState<Page>(pageOf(location.hash));
  // the downloader stays mounted once opened, so a minimised search is there when it comes back
  const [downloader, setDownloader] = useState<"never" | "open" | "hidden">("never");
  const [signIn, setSignIn] = useState(keyNeeded());
  useEffect(() => {
    const change = () => setPage(pageOf(location.hash));
    window.addEventListener("hashchange", change);
    return () => window.removeEventListener("hashchange", change);
  }, []);
  useEffect(() => onKeyChange(() => setSignIn(keyNeeded())), []);
  if (signIn) return <SignIn />;
  return (
    <div class="app">
      <nav class="top">
        <span class="brand">modelyard</span>
        {(Object.keys(PAGES) as Page[]).map((p) => (
          <a key={p} href={`#/${p}`} class={p === page ? "current" : ""} aria-current={p === page ? "page" : undefined}>
            {PAGES[p]}
          </a>
        ))}
        <span class="spacer" />
        <a href="/docs" target="_blank" rel="noreferrer">
          API
        </a>
        {apiKey() && (
          <button class="link" onClick={() => (setApiKey(null), location.reload())}>
            Sign out
          </button>
        )}
      </nav>
      <main>
        {page === "library" && <Library openDownloader={() => setDownloader("open")} />}
        {page === "deployments" && <Deployments />}
        {page === "routes" && <Routes />}
        {page === "running" && <Running />}
        {page === "resources" && <Resources />}
        {page === "playground" && <Playground />}
        {page === "usage" && <Usage />}
        {page === "settings" && <Settings />}
      </main>
      {downloader !== "never" && (
        <DownloadDialog hidden={downloader === "hidden"} onClose={() => setDownloader("hidden")} />
      )}
      {downloader !== "open" && <DownloadsButton onOpen={() => setDownloader("open")} />}
      <Monitor />
    </div>
  );
}

render(<App />, document.getElementById("app")!);
