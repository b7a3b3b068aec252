import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import 'antd/dist/antd.css';
import { App } from './App';

// every module of the first screen is evaluated here (bench:console reads the marks: boot, data, rows)
performance.mark('hcm:boot');

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
