// Grammar from the distribution spec (reference/regexp.go). A name that passes cannot
// contain "..", "%", a leading "/" or anything else that could leave the data dir.
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*'
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`)
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const MAX_NAME_LENGTH = 255

export function isRepositoryName (name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME.test(name)
}

export function isTag (tag: string): boolean {
  return TAG.test(tag)
}
