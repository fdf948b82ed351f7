export async function runDemo(_a: string[]): Promise<number> { return 0; }
