// Linked against one layer's whole archive and nothing but the layers below it (tests/CMakeLists):
// every object of the layer must resolve against those, so a call into a layer above is a link
// error here even where no program uses the call yet.
int main() { return 0; }
