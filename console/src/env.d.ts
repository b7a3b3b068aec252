// style sheets imported for their side effect (Vite bundles them into a hashed .css file linked from index.html)
declare module '*.css';
